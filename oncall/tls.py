"""The HTTPS listener's certificate: `[server] tls_cert_file` and `tls_key_file`, loaded into
an `ssl.SSLContext`, and swapped for a renewed one without a restart.

The listening socket keeps the context it was started with; its SNI callback, which OpenSSL
calls for every handshake (with no name when the client sent none, as for an IP address),
hands each new connection the current context. A reload loads the files into a new context
and, only when that worked whole, makes it current: connections already open keep the
certificate they were made with, and a broken file leaves the previous one in use. (Loading
the files again into the listening context itself would leave it half changed when the key
does not match the new certificate.)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
CERT_KEY = "tls_cert_file"
KEY_KEY = "tls_key_file"


class CertificateError(Exception):
    """The certificate or key file cannot be used; `keys` names the settings at fault."""

    def __init__(self, message: str, keys: tuple[str, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.keys = keys

    def named(self) -> str:
        """Return the message after the settings it concerns: `[server] tls_...: ...`."""
        return f"[server] {' and '.join(self.keys)}: {self.message}"


@dataclass(frozen=True)
class Loaded:
    """A context ready to serve, and what its certificate says (for the log)."""

    context: ssl.SSLContext
    subject: str
    serial: int
    not_after: datetime


def _no_passphrase() -> str:
    # Without a callback OpenSSL would ask on the terminal (the key was checked unencrypted
    # above; this only covers a file replaced meanwhile).
    raise CertificateError("the private key is encrypted", (KEY_KEY,))


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror or exc}", (key,)) from None


def load(cert_file: str, key_file: str) -> Loaded:
    """Return a server context (TLS 1.2 or later) presenting the PEM certificate chain of
    `cert_file` with the private key of `key_file` (both may be one file).

    Raises CertificateError naming the setting at fault: an unreadable file, one without a
    PEM certificate or key, an encrypted key, or a key that does not match the certificate.
    """
    chain = _read(cert_file, CERT_KEY)
    if b"-----BEGIN CERTIFICATE-----" not in chain:
        raise CertificateError(f"{cert_file} holds no PEM certificate", (CERT_KEY,))
    try:
        leaf = x509.load_pem_x509_certificate(chain)
    except ValueError:
        raise CertificateError(
            f"{cert_file}: its certificate is not valid PEM", (CERT_KEY,)
        ) from None
    secret = _read(key_file, KEY_KEY)
    if b"PRIVATE KEY-----" not in secret:
        raise CertificateError(f"{key_file} holds no PEM private key", (KEY_KEY,))
    try:
        serialization.load_pem_private_key(secret, password=None)
    except TypeError:  # it asks for a passphrase; OpenSSL would ask on the terminal
        raise CertificateError(
            f"{key_file}: the private key is encrypted; give one without a passphrase",
            (KEY_KEY,),
        ) from None
    except ValueError:
        raise CertificateError(
            f"{key_file}: its private key is not valid PEM", (KEY_KEY,)
        ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except OSError as exc:  # ssl.SSLError included; the files changed meanwhile, too
        reason = getattr(exc, "reason", None)
        if reason == "KEY_VALUES_MISMATCH":
            raise CertificateError(
                f"the private key of {key_file} does not belong to the certificate of {cert_file}",
                (CERT_KEY, KEY_KEY),
            ) from None
        raise CertificateError(
            f"cannot load {cert_file} with {key_file}: {reason or exc}", (CERT_KEY, KEY_KEY)
        ) from None
    return Loaded(
        context,
        leaf.subject.rfc4514_string(),
        leaf.serial_number,
        leaf.not_valid_after_utc,
    )


class Certificates:
    """The certificate presented to new connections; `listening` goes to the socket."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.loaded = load(cert_file, key_file)
        self.listening = self.loaded.context
        self.listening.sni_callback = self._choose

    def _choose(
        self, connection: ssl.SSLObject, _name: str | None, context: ssl.SSLContext
    ) -> None:
        current = self.loaded.context
        if current is not context:
            connection.context = current

    def read(self) -> Loaded:
        """Return the files loaded anew (slow enough for a worker thread; changes nothing).

        Raises CertificateError."""
        return load(self.cert_file, self.key_file)

    def activate(self, loaded: Loaded) -> None:
        """Present `loaded` to every connection from now on."""
        self.loaded = loaded
