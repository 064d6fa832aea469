"""Files that hold secrets (the link-signing key, the tokens `init` generates): mode 0600.

A file is created whole or not at all, and never replaces one that exists: its content is
written to a temporary file of its own (O_CREAT|O_EXCL, mode 0600) and then hard-linked
to its name, which fails when the name exists. Two processes creating the same file at
once therefore agree on one content, and a reader never sees a half-written file.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat

log = logging.getLogger(__name__)
PRIVATE = 0o600


class SecretFileError(Exception):
    """A secret file cannot be created, read or made private; the message names it."""


def create_private(path: str, text: str) -> bool:
    """Create the file `path` holding `text` with mode 0600, its directory too when missing.

    Returns False, changing nothing, when `path` already exists. Raises SecretFileError
    when the file cannot be written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        finally:
            if os.path.lexists(temporary):
                os.unlink(temporary)
    except FileExistsError:
        return False
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot create it: {exc.strerror}") from None
    return True


def read_private(path: str) -> str | None:
    """Return the text of the secret file `path`, or None when there is none.

    A file others may read is made private (mode 0600) first, with a warning; raises
    SecretFileError when that is not allowed (the file belongs to someone else) or the file
    cannot be read.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot read it: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"{path}: expected a regular file")
    if info.st_mode & 0o077:
        try:
            os.chmod(path, PRIVATE)
        except OSError as exc:
            raise SecretFileError(
                f"{path}: holds secrets but others may read it (mode "
                f"{stat.S_IMODE(info.st_mode):04o}) and it cannot be made 0600: "
                f"{exc.strerror}; run `chmod 600 {path}` as its owner"
            ) from None
        log.warning(
            "a secret file others could read was made private",
            extra={"path": path, "mode": f"{stat.S_IMODE(info.st_mode):04o}"},
        )
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SecretFileError(f"{path}: cannot read it: {reason}") from None
