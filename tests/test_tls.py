"""The TLS files: what loads, what is refused and which setting each refusal names, and the
swap of the certificate presented to new connections (a real listener and client)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from oncall import tls

CA = trustme.CA()


def write_pair(folder: Path, name: str = "first") -> tuple[Path, Path, trustme.LeafCert]:
    issued = CA.issue_cert("127.0.0.1", organization_name=name)
    cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key, issued


def encrypted(issued: trustme.LeafCert) -> bytes:
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    return key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )


def test_a_certificate_and_its_key_load_for_tls_1_2_and_later(tmp_path):
    cert, key, issued = write_pair(tmp_path)
    loaded = tls.load(str(cert), str(key))
    assert loaded.context.minimum_version == ssl.TLSVersion.TLSv1_2
    leaf = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    assert loaded.serial == leaf.serial_number
    assert "O=first" in loaded.subject
    # One file holding both works as well (key first or certificate first).
    both = tmp_path / "both.pem"
    both.write_bytes(issued.private_key_and_cert_chain_pem.bytes())
    assert tls.load(str(both), str(both)).serial == leaf.serial_number


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


Pair = tuple[Path, Path]
TRUNCATED_CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n"
TRUNCATED_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"


def missing_cert(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return t / "absent.pem", k


def missing_key(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return c, t / "absent.pem"


def swapped(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return k, c


def cert_twice(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return c, c


def truncated_cert(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return _write(t / "truncated.pem", TRUNCATED_CERT), k


def truncated_key(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return c, _write(t / "truncated.pem", TRUNCATED_KEY)


def encrypted_key(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return c, _write(t / "encrypted.pem", encrypted(i))


def other_key(c: Path, k: Path, i: trustme.LeafCert, t: Path) -> Pair:
    return c, write_pair(t, "other")[1]


CERT, KEY, BOTH = (tls.CERT_KEY,), (tls.KEY_KEY,), (tls.CERT_KEY, tls.KEY_KEY)
# Each broken pair: the setting(s) named, and words of the message.
BROKEN = [
    (missing_cert, CERT, "cannot read"),
    (missing_key, KEY, "cannot read"),
    (swapped, CERT, "no PEM certificate"),  # the key file first
    (cert_twice, KEY, "no PEM private key"),
    (truncated_cert, CERT, "not valid PEM"),  # a copy half done
    (truncated_key, KEY, "not valid PEM"),
    (encrypted_key, KEY, "encrypted"),  # OpenSSL would ask for its passphrase on the tty
    (other_key, BOTH, "does not belong"),  # a renewal's certificate before its key
]


@pytest.mark.parametrize(("make", "keys", "words"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_a_broken_pair_is_refused_naming_the_setting_at_fault(tmp_path, make, keys, words):
    cert, key, issued = write_pair(tmp_path)
    cert, key = make(cert, key, issued, tmp_path)
    with pytest.raises(tls.CertificateError) as caught:
        tls.load(str(cert), str(key))
    assert caught.value.keys == keys
    assert words in caught.value.message
    assert caught.value.named().startswith(f"[server] {' and '.join(keys)}: ")
    assert "BEGIN" not in caught.value.message and "MII" not in caught.value.message


async def served_serial(port: int, client: ssl.SSLContext, name: str | None) -> int:
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname=name or "127.0.0.1"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


@pytest.mark.parametrize("name", [None, "127.0.0.1"])  # without SNI (an address), and with
async def test_new_connections_get_the_activated_certificate(tmp_path, name):
    cert, key, _ = write_pair(tmp_path)
    certificates = tls.Certificates(str(cert), str(key))
    first = certificates.loaded.serial
    server = await asyncio.get_running_loop().create_server(
        asyncio.Protocol, "127.0.0.1", 0, ssl=certificates.listening
    )
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context()
    CA.configure_trust(client)
    client.check_hostname = name is not None
    try:
        assert await served_serial(port, client, name) == first
        # Renewed in place, as certbot does: nothing changes until it is activated.
        renewed_cert, renewed_key, _ = write_pair(tmp_path, "renewed")
        cert.write_bytes(renewed_cert.read_bytes())
        key.write_bytes(renewed_key.read_bytes())
        renewed = certificates.read()
        assert await served_serial(port, client, name) == first
        certificates.activate(renewed)
        assert await served_serial(port, client, name) == renewed.serial != first
        assert certificates.listening.minimum_version == ssl.TLSVersion.TLSv1_2
    finally:
        server.close()
        await server.wait_closed()
