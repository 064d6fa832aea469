"""The generated link-signing key's file (`[security] secret_key_file`, mode 0600).

Used when `[security] secret_key` is empty. Versions before this file existed kept the key
in the database's `meta` table; `load_or_create` takes that key over, so links in pages
already sent stay valid.
"""

from __future__ import annotations

import logging
import secrets

from oncall.errors import ConfigError
from oncall.secretfile import SecretFileError, create_private, read_private

log = logging.getLogger(__name__)
MIN_KEY_LENGTH = 16  # as `[security] secret_key`


def load_or_create(path: str, legacy: str | None = None) -> bytes:
    """Return the key kept in the file `path`, creating the file when there is none.

    A new file holds `legacy` (the key an older version kept in the database) when given,
    else a fresh random key. When the file already holds another key than `legacy`, the
    file's wins and a warning says that links signed with the old key no longer verify.
    Raises ConfigError naming the file when it cannot be read, created or made private,
    or holds too short a key.
    """
    try:
        text = read_private(path)
        if text is None:
            if create_private(path, (legacy or secrets.token_urlsafe(32)) + "\n"):
                log.info("kept the link-signing key in a file", extra={"path": path})
            text = read_private(path)  # when another process created it first, its key
    except SecretFileError as error:
        raise ConfigError([f"[security] secret_key_file: {error}"]) from None
    key = (text or "").strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            [
                f"[security] secret_key_file: {path}: expected a key of at least "
                f"{MIN_KEY_LENGTH} characters (delete the file to generate one)"
            ]
        )
    if legacy is not None and legacy != key:
        log.warning(
            "the database held another link-signing key than the key file; the file's is "
            "used, and links signed with the database's no longer verify",
            extra={"path": path},
        )
    return key.encode()
