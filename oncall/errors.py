"""Domain errors; the web layer maps each to one HTTP status in one middleware."""

from __future__ import annotations


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
