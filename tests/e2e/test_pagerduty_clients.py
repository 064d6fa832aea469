"""PagerDuty's own Python clients against a real `python app.py`, on both databases: the
older `pdpyras` over plain http, the official `pagerduty` (which refuses any base URL but
https://) over the service's HTTPS listener with a certificate made here by trustme.

Each drives the full cycle a team's code does: a change event, a trigger with details,
links and images, the same trigger again (one incident), acknowledge, resolve; the
incident is then read back through the API: its alert's context structured, the change
shown as what changed before it.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pagerduty
import pytest
import trustme

from tests.ingest.test_events_v2 import ALICE, DIRECTORY, EV_TOKEN
from tests.support.process import ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT

with warnings.catch_warnings():  # it says, on import, that `pagerduty` replaces it
    warnings.simplefilter("ignore", UserWarning)
    import pdpyras

DETAILS = {"free": "2%", "disks": [{"name": "sda", "used": 0.98}]}
LINKS = [{"href": "https://runbooks.example.com/disk", "text": "Runbook"}]
IMAGES = [
    {
        "src": "https://grafana.example.com/render/disk.png",
        "href": "https://grafana.example.com/d/disk",
        "alt": "Disk usage",
    }
]
CHANGE_DETAILS = {"build": 812, "state": "passed"}
CHANGE_LINKS = [{"href": "https://ci.example.com/builds/812", "text": "Build 812"}]

StartService = Callable[..., Awaitable[ServiceProcess]]


@pytest.fixture
async def start_service(
    tmp_path: Path, key_prefix: str, database_env: dict[str, str]
) -> AsyncIterator[StartService]:
    """Return a function starting `python app.py` on this test's database (both backends)
    with DIRECTORY (an events_v2 integration whose routing key is EV_TOKEN)."""
    started: list[ServiceProcess] = []

    async def start(tls: ssl.SSLContext | None = None, **env: str) -> ServiceProcess:
        path = tmp_path / "oncall.yaml"
        path.write_text(DIRECTORY)
        service = ServiceProcess(
            {
                "ONCALL_SETTINGS": "/dev/null",
                "ONCALL_REDIS_HOST": REDIS_HOST,
                "ONCALL_REDIS_PORT": str(REDIS_PORT),
                "ONCALL_REDIS_KEY_PREFIX": key_prefix,
                "ONCALL_DIRECTORY_PATH": str(path),
                **database_env,
                **env,
            },
            tmp_path / f"oncall-{len(started)}.log",
            tls=tls,
        )
        started.append(service)
        await service.start()
        return service

    yield start
    for service in started:
        assert service.stop() == 0


async def incidents_of(service: ServiceProcess) -> list[dict[str, Any]]:
    """Return every incident with its details (alerts, timeline, changes), newest first."""
    connector = aiohttp.TCPConnector(ssl=service.tls) if service.tls else None
    async with aiohttp.ClientSession(connector=connector, headers=ALICE) as session:
        async with session.get(f"{service.url}/api/v1/incidents") as response:
            assert response.status == 200
            listed = (await response.json())["incidents"]
        found = []
        for incident in listed:
            async with session.get(f"{service.url}/api/v1/incidents/{incident['id']}") as answer:
                assert answer.status == 200
                found.append(await answer.json())
        return found


async def check_the_trigger(service: ServiceProcess, dedup_key: str) -> None:
    """One incident, its alert's context structured, the change event shown with it."""
    [incident] = await incidents_of(service)
    assert (incident["status"], incident["dedup_key"]) == ("triggered", dedup_key)
    assert (incident["title"], incident["severity"]) == ("Disk full on db1", "critical")
    [alert] = incident["alerts"]
    assert alert["custom_details"] == DETAILS
    assert alert["links"] == LINKS
    assert alert["images"] == IMAGES
    [change] = incident["changes"]
    assert (change["summary"], change["source"]) == ("Deployed api v2.3.1", "ci")
    assert change["custom_details"] == CHANGE_DETAILS
    assert change["links"] == CHANGE_LINKS


async def check_the_status(service: ServiceProcess, status: str) -> None:
    [incident] = await incidents_of(service)
    assert incident["status"] == status
    assert incident[f"{status}_by"] == "pd"  # the integration acted, as PagerDuty shows it


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


async def test_pdpyras_runs_the_full_cycle_over_http(start_service: StartService) -> None:
    service = await start_service()
    changes = pdpyras.ChangeEventsAPISession(EV_TOKEN)
    changes.url = service.url
    await asyncio.to_thread(
        changes.submit,
        "Deployed api v2.3.1",
        source="ci",
        custom_details=CHANGE_DETAILS,
        links=CHANGE_LINKS,
    )
    events = pdpyras.EventsAPISession(EV_TOKEN)
    events.url = service.url
    trigger = {
        "summary": "Disk full on db1",
        "source": "db1",
        "dedup_key": "disk-db1",
        "severity": "critical",
        "custom_details": DETAILS,
        "links": LINKS,
        "images": IMAGES,
    }
    assert await asyncio.to_thread(events.trigger, **trigger) == "disk-db1"
    assert await asyncio.to_thread(events.trigger, **trigger) == "disk-db1"  # the same one
    await check_the_trigger(service, "disk-db1")
    await asyncio.to_thread(events.acknowledge, "disk-db1")
    await check_the_status(service, "acknowledged")
    await asyncio.to_thread(events.resolve, "disk-db1")
    await check_the_status(service, "resolved")


async def test_pagerduty_runs_the_full_cycle_over_https(
    start_service: StartService, tmp_path: Path
) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    service = await start_service(
        tls=trusting, ONCALL_SERVER_TLS_CERT_FILE=str(cert), ONCALL_SERVER_TLS_KEY_FILE=str(key)
    )
    with pytest.raises(pagerduty.UrlError):  # why a TLS proxy was needed before
        pagerduty.EventsApiV2Client(EV_TOKEN, base_url=f"http://127.0.0.1:{service.port}")
    # The test's CA is trusted by this client alone; the environment is not read.
    client = pagerduty.EventsApiV2Client(
        EV_TOKEN, base_url=service.url, verify=trusting, trust_env=False
    )
    try:
        # A timestamp given: this version's own default one raises (datetime.timezone).
        await asyncio.to_thread(
            client.submit,
            "Deployed api v2.3.1",
            source="ci",
            custom_details=CHANGE_DETAILS,
            links=CHANGE_LINKS,
            timestamp=timestamp(),
        )

        def trigger() -> str:
            return client.trigger(
                "Disk full on db1",
                "db1",
                dedup_key="disk-db1",
                custom_details=DETAILS,
                links=LINKS,
                images=IMAGES,
            )

        assert await asyncio.to_thread(trigger) == "disk-db1"
        assert await asyncio.to_thread(trigger) == "disk-db1"
        await check_the_trigger(service, "disk-db1")
        await asyncio.to_thread(client.acknowledge, "disk-db1")
        await check_the_status(service, "acknowledged")
        await asyncio.to_thread(client.resolve, "disk-db1")
        await check_the_status(service, "resolved")
    finally:
        client.close()
