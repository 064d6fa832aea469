"""The services of a runtime without its database or Redis: for tests that run store
functions on a connection of their own, where a unit of work calls other domains inside
its transaction (`*_in` methods)."""

from __future__ import annotations

from typing import Any

from oncall.clock import Clock
from oncall.directory.holder import DirectoryHolder
from oncall.directory.model import Directory
from oncall.runtime import Runtime
from oncall.settings import load_settings
from tests.support.factories import T0


def services(
    directory: Directory, db: Any = None, clock: Clock = lambda: T0, **settings_env: str
) -> Runtime:
    """Return a runtime of default settings (and `settings_env`'s ONCALL_ variables) on
    `directory`, never started: its services' in-transaction methods work on any
    connection; `db` stands in for its database."""
    settings = load_settings({"ONCALL_SETTINGS": "/dev/null", **settings_env})
    return Runtime(settings, DirectoryHolder(directory), clock, db, b"test-link-key-0123456789")
