"""Which policy an incident follows: one of the directory's by name, or a single user it
was reassigned to by hand. Pure.

An incident reassigned to a user stores `user:NAME` as its policy (directory names cannot
hold a colon): one level paging that user, nothing after it, so every step, timer and
reconciler pass treats it as any other policy.
"""

from __future__ import annotations

from datetime import timedelta

from oncall.directory.model import Directory, Level, Policy, Target

USER_POLICY = "user:"


def user_policy(user: str) -> str:
    """Return the policy name of an incident reassigned to `user`."""
    return f"{USER_POLICY}{user}"


def policy_named(directory: Directory, name: str | None) -> Policy | None:
    """Return the policy an incident's `policy` column names, or None when it is gone.

    `user:NAME` is a one-level policy paging that user, its escalation exhausted at once
    after (a user who has left the directory is paged by nobody, as a level would)."""
    if name and name.startswith(USER_POLICY):
        user = Target("user", name.removeprefix(USER_POLICY))
        return Policy(name, 0, (Level((user,), timedelta(0)),))
    return directory.policies.get(name or "")
