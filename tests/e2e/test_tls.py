"""`python app.py` serving HTTPS with `[server] tls_cert_file` and `tls_key_file`, certificates
made in the test by trustme: plain HTTP on the port is refused, SIGHUP and `/-/reload` serve
a renewed certificate to new connections (the ones open keep theirs), a broken file keeps the
previous certificate, and a key that does not match stops start-up naming both settings."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme
from cryptography import x509

from tests.support.factories import ALICE_TOKEN, DIRECTORY_YAML
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

ADMIN_DIRECTORY = DIRECTORY_YAML.replace(
    "    full_name: Alice Example\n", "    full_name: Alice Example\n    role: admin\n", 1
)
ADMIN = {"Authorization": f"Bearer {ALICE_TOKEN}"}
OTHER_ADDRESS = "127.0.0.2"  # Linux routes all of 127/8 to the loopback interface


class Files:
    """The service's PEM files, rewritten in place as a renewal (certbot) does."""

    def __init__(self, folder: Path, ca: trustme.CA) -> None:
        self.ca = ca
        self.cert = folder / "fullchain.pem"
        self.key = folder / "privkey.pem"

    def issue(self, name: str) -> int:
        """Write a new certificate for 127.0.0.1 (organisation `name`) and its key; return
        its serial number."""
        issued = self.ca.issue_cert("127.0.0.1", "localhost", organization_name=name)
        issued.private_key_pem.write_to_path(str(self.key))
        self.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        return x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes()).serial_number

    def env(self) -> dict[str, str]:
        return {
            "ONCALL_SERVER_TLS_CERT_FILE": str(self.cert),
            "ONCALL_SERVER_TLS_KEY_FILE": str(self.key),
        }


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test's CA (and verifies names, as clients do)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def files(tmp_path: Path, ca: trustme.CA) -> Files:
    return Files(tmp_path, ca)


def base_env(tmp_path: Path, key_prefix: str, directory: str) -> dict[str, str]:
    path = tmp_path / "oncall.yaml"
    path.write_text(directory)
    return {
        "ONCALL_SETTINGS": "/dev/null",
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(path),
    }


StartTls = Callable[..., Awaitable[ServiceProcess]]


@pytest.fixture
async def start_tls(
    tmp_path: Path, key_prefix: str, files: Files, trusting: ssl.SSLContext
) -> AsyncIterator[StartTls]:
    """Return a function starting `python app.py` over HTTPS with the test's files; the
    database is given as variables (default: SQLite in the test's folder)."""
    started: list[ServiceProcess] = []

    async def start(**env: str) -> ServiceProcess:
        service = ServiceProcess(
            {
                **base_env(tmp_path, key_prefix, ADMIN_DIRECTORY),
                "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db",
                **files.env(),
                **env,
            },
            tmp_path / f"oncall-{len(started)}.log",
            tls=trusting,
        )
        started.append(service)
        await service.start()
        return service

    yield start
    for service in started:
        assert service.stop() == 0


async def served_serial(port: int, trusting: ssl.SSLContext, name: str | None = None) -> int:
    """Return the serial number of the certificate a new connection to `port` is given
    (asking for `name` by SNI; by default for the address, as a client sends no name)."""
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=trusting, server_hostname=name or "127.0.0.1"
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_it_serves_https_with_the_certificate_and_refuses_plain_http(
    start_tls: StartTls, files: Files, trusting: ssl.SSLContext
) -> None:
    serial = files.issue("first")
    service = await start_tls()
    assert await served_serial(service.port, trusting) == serial
    connector = aiohttp.TCPConnector(ssl=trusting)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"https://127.0.0.1:{service.port}/-/healthy") as response:
            assert response.status == 200
        # public_url defaulted to https://127.0.0.1:PORT: the session cookie is Secure.
        async with session.get(f"https://127.0.0.1:{service.port}/login") as response:
            assert response.status == 200
            cookies = response.headers.getall("Set-Cookie")
            assert cookies and all("Secure" in cookie for cookie in cookies)
    async with aiohttp.ClientSession() as plain:
        # Plain HTTP on the TLS port: the handshake fails and the connection is closed.
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://127.0.0.1:{service.port}/-/healthy") as response:
                await response.read()
        # A client that does not trust the certificate is refused by its own check.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with plain.get(f"https://127.0.0.1:{service.port}/-/healthy"):
                pass
    # TLS 1.1 and older are not offered.
    old = ssl.create_default_context()
    files.ca.configure_trust(old)
    with warnings.catch_warnings():  # deprecated: which is why the service refuses it
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await served_serial(service.port, old)
    # ...and the service still serves after all of that.
    assert await served_serial(service.port, trusting) == serial


async def http_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send one GET /-/healthy on an open connection; return the status line."""
    writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    status = await reader.readline()
    await reader.readuntil(b"OK\n")  # the rest of the answer: the connection stays usable
    return status


async def test_sighup_serves_a_renewed_certificate_to_new_connections(
    start_tls: StartTls, files: Files, trusting: ssl.SSLContext
) -> None:
    first = files.issue("first")
    service = await start_tls()
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port, ssl=trusting)
    try:
        assert (await http_over(reader, writer)).startswith(b"HTTP/1.1 200")
        renewed = files.issue("renewed")
        assert renewed != first
        assert service.proc is not None
        os.kill(service.proc.pid, signal.SIGHUP)

        async def renewed_served() -> bool:
            return await served_serial(service.port, trusting) == renewed

        await eventually(renewed_served, what="the renewed certificate to be served")
        # By name too (SNI): the same certificate, whatever the client asks for.
        assert await served_serial(service.port, trusting, name="localhost") == renewed
        # The connection made before keeps its certificate and is still served.
        old = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert x509.load_der_x509_certificate(old).serial_number == first
        assert (await http_over(reader, writer)).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    log = service.log_path.read_text()
    assert "TLS certificate reloaded" in log and "renewed" in log


async def test_reload_swaps_the_certificate_and_keeps_it_when_a_file_is_broken(
    tmp_path: Path,
    key_prefix: str,
    database_env: dict[str, str],
    files: Files,
    trusting: ssl.SSLContext,
) -> None:
    files.issue("first")
    service = ServiceProcess(
        {**base_env(tmp_path, key_prefix, ADMIN_DIRECTORY), **database_env, **files.env()},
        tmp_path / "oncall.log",
        tls=trusting,
    )
    await service.start()
    try:
        connector = aiohttp.TCPConnector(ssl=trusting, force_close=True)
        async with aiohttp.ClientSession(connector=connector, headers=ADMIN) as session:
            renewed = files.issue("renewed")
            async with session.post(f"{service.url}/-/reload") as response:
                assert (response.status, await response.json()) == (200, {"status": "ok"})
            # Answered after the swap: the next connection gets the new certificate.
            assert await served_serial(service.port, trusting) == renewed

            # A truncated certificate file (a copy half done): refused, the renewed stays.
            files.cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n")
            async with session.post(f"{service.url}/-/reload") as response:
                assert response.status == 400
                error = (await response.json())["error"]
            assert "TLS certificate not reloaded" in error and "tls_cert_file" in error
            assert await served_serial(service.port, trusting) == renewed

            # A new certificate whose key was not written yet: the pair does not match.
            key = files.key.read_bytes()
            files.issue("third")
            files.key.write_bytes(key)
            async with session.post(f"{service.url}/-/reload") as response:
                assert response.status == 400
                error = (await response.json())["error"]
            assert "tls_cert_file and tls_key_file" in error and "does not belong" in error
            assert "PRIVATE KEY" not in error and "BEGIN" not in error
            assert await served_serial(service.port, trusting) == renewed

            async with session.get(f"{service.url}/api/v1/audit") as response:
                entries = (await response.json())["entries"]
            assert [e["detail"]["certificate"] for e in entries] == [
                "rejected",
                "rejected",
                "reloaded",
            ]
        log = service.log_path.read_text()
        assert log.count("TLS certificate reload rejected; the previous certificate stays") == 2
    finally:
        assert service.stop() == 0


async def test_connections_are_counted_before_their_handshake(
    start_tls: StartTls, files: Files, trusting: ssl.SSLContext
) -> None:
    files.issue("first")
    service = await start_tls(ONCALL_SERVER_MAX_CONNECTIONS_PER_ADDRESS="3")
    # Three connections that never start their handshake hold the address's places...
    idle = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(3)]
    try:
        # ...so a fourth is closed at once, without a handshake: its client sees EOF.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await served_serial(service.port, trusting)
        # Another address is served meanwhile.
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", service.port, ssl=trusting, local_addr=(OTHER_ADDRESS, 0)
        )
        writer.close()
        for sock in idle:  # still open: the refusal above was the limit, not a timeout
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in idle:
            sock.close()

    async def served_again() -> bool:
        try:
            return await served_serial(service.port, trusting) > 0
        except (ssl.SSLError, ConnectionError):
            return False

    # Their places are given back when they close.
    await eventually(served_again, what="the address to be served again")


def run_app(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py", *command],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_key_that_does_not_match_stops_start_up_naming_both_settings(
    tmp_path: Path, key_prefix: str, files: Files
) -> None:
    files.issue("first")
    other = files.ca.issue_cert("127.0.0.1")
    other_key = tmp_path / "other-key.pem"
    other.private_key_pem.write_to_path(str(other_key))
    env = {
        **base_env(tmp_path, key_prefix, ADMIN_DIRECTORY),
        "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db",
        "ONCALL_DIRECTORY_ENV_FILE": str(tmp_path / "oncall.env"),
        "ONCALL_SECURITY_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
        **files.env(),
        "ONCALL_SERVER_TLS_KEY_FILE": str(other_key),
    }
    result = run_app([], env)
    assert result.returncode == 2, result.stderr
    [problem] = [line for line in result.stderr.splitlines() if "tls_" in line]
    assert "[server] tls_cert_file (from ONCALL_SERVER_TLS_CERT_FILE)" in problem
    assert "tls_key_file (from ONCALL_SERVER_TLS_KEY_FILE)" in problem
    assert "does not belong to the certificate" in problem
    assert "BEGIN" not in result.stderr  # nothing of the key's text
    # check-config says so too, and a certificate without its key is refused alike.
    checked = run_app(["check-config"], env)
    assert checked.returncode == 1 and "does not belong" in checked.stderr
    result = run_app([], {**env, "ONCALL_SERVER_TLS_KEY_FILE": ""})
    assert result.returncode == 2
    assert "tls_cert_file" in result.stderr and "tls_key_file" in result.stderr
    assert "set both" in result.stderr
