"""The active directory of a running process, swapped whole by a reload."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from oncall.directory.lint import lint
from oncall.directory.model import Directory
from oncall.directory.parse import load_directory

log = logging.getLogger(__name__)


class DirectoryHolder:
    """The active directory; a reload swaps it only when the new file is valid.

    `env_file` is the env file its `${VAR}`s fall back to (`[directory] env_file`), read
    again on every reload."""

    def __init__(self, directory: Directory, env_file: str = "") -> None:
        self.current = directory
        self.env_file = env_file

    def reload(self, environ: Mapping[str, str] | None = None) -> Directory:
        """Re-read the file the active directory came from, activate it and return it.

        Raises ConfigError, leaving the old directory active, when the new file is invalid.
        """
        self.current = load_directory(self.current.source, environ, self.env_file)
        return self.current


def log_warnings(directory: Directory, now: datetime) -> int:
    """Log each lint warning of `directory` (the file alone, as `check-config` reads it) at
    warning level, with its path; return how many there were. Warnings never stop anything."""
    warnings = lint(directory, now)
    for warning in warnings:
        log.warning(
            "directory warning: %s",
            warning,
            extra={"directory": directory.source, "path": warning.path},
        )
    return len(warnings)
