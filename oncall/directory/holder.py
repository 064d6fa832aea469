"""The active directory of a running process, swapped whole by a reload."""

from __future__ import annotations

from collections.abc import Mapping

from oncall.directory.model import Directory
from oncall.directory.parse import load_directory


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
