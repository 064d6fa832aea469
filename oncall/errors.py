"""Domain errors; the web layer maps each to one HTTP status in one middleware."""

from __future__ import annotations


class ConfigError(Exception):
    """The settings or the directory file are invalid; `problems` lists every one."""

    def __init__(self, problems: list[str], directory_path: str | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.directory_path = directory_path  # so check-config can still check that file


class ConstraintViolated(Exception):
    """A transaction broke a constraint of the database and was rolled back: for a unique
    index, usually because a concurrent transaction wrote the same thing first."""


class OncallError(Exception):
    """Base class of every error the service raises on purpose."""

    status = 500

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, str]:
        """Return the JSON error body: `error`, plus `field` when one field is at fault."""
        body = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(OncallError):
    """The request is malformed; `field` names the offending part (a JSON path)."""

    status = 400


class Unauthorized(OncallError):
    """Missing or wrong credentials."""

    status = 401


class Forbidden(OncallError):
    """The caller is known but its role does not allow this."""

    status = 403


class TooManyRequests(OncallError):
    """Too many failed attempts from one client; `retry_after` is in whole seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(OncallError):
    """The addressed object does not exist."""

    status = 404


class Conflict(OncallError):
    """The action is not possible in the object's current state."""

    status = 409


class PayloadTooLarge(OncallError):
    """The request body exceeds the configured limit."""

    status = 413


class Unavailable(OncallError):
    """A dependency failed transiently; the client should retry (Alertmanager does on 5xx)."""

    status = 503
