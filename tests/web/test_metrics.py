"""/metrics parses with prometheus_client's parser, its counters move as the service acts,
it needs its token on the main port, and scrapers asking together cost one rendering."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from oncall.clock import system_clock
from oncall.web.keys import RUNTIME
from tests.support.factories import ALICE_TOKEN, AM_AUTH, fast_directory, make_alert, make_webhook
from tests.support.ops import OPS
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"


async def scrape(client: Any, headers: dict[str, str] | None = None) -> dict[tuple, float]:
    response = await client.get("/metrics", headers=OPS if headers is None else headers)
    assert response.status == 200
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_as_the_service_acts(make_client):
    client = await make_client(directory=fast_directory(levels=("1h", "1h")), clock=system_clock)
    before = await scrape(client)
    response = await client.post(
        URL, json=make_webhook([make_alert("db1"), make_alert("db2")]), headers=AM_AUTH
    )
    [incident_id] = (await response.json())["incidents"]
    await client.post(URL, data=b"{", headers=AM_AUTH)
    await client.post(URL, json={}, headers={"Authorization": "Bearer wrong-token-123"})

    async def step_fired() -> Any:
        samples = await scrape(client)
        fired = value(samples, "oncall_escalation_steps_total", outcome="fired")
        next_pending = value(samples, "oncall_jobs_pending", store="escalation")
        return samples if fired and next_pending else None

    after = await eventually(step_fired, what="level 1 fired")
    assert (
        value(after, "oncall_alerts_received_total", integration="prometheus", outcome="accepted")
        - value(
            before, "oncall_alerts_received_total", integration="prometheus", outcome="accepted"
        )
        == 2
    )
    assert (
        value(after, "oncall_alerts_received_total", integration="prometheus", outcome="invalid")
        == 1
    )
    assert (
        value(after, "oncall_alerts_received_total", integration="unknown", outcome="unauthorized")
        == 1
    )
    assert value(after, "oncall_incidents_total", event="opened") == 1
    assert value(after, "oncall_escalation_step_lateness_seconds_count") == 1
    assert value(after, "oncall_reconcile_runs_total", outcome="ok") >= 1
    assert (
        value(
            after,
            "oncall_http_request_duration_seconds_count",
            route="/api/v1/integrations/alertmanager",
            method="POST",
            status="200",
        )
        == 1
    )
    await eventually(lambda: pending(client, 1), what="level 2's job counted")
    await client.post(
        f"/api/v1/incidents/{incident_id}/acknowledge",
        headers={"Authorization": f"Bearer {ALICE_TOKEN}"},
    )
    final = await scrape(client)
    assert value(final, "oncall_incidents_total", event="acknowledged") == 1

    await eventually(lambda: pending(client, 0), what="the job's removal counted")


async def pending(client: Any, count: int) -> bool:
    """Return whether the escalation store's gauge shows `count` jobs: it is the Redis
    probe's last count, read and never waited for."""
    samples = await scrape(client)
    return value(samples, "oncall_jobs_pending", store="escalation") == count


async def test_metrics_require_their_token(make_client):
    client = await make_client(server_metrics_token="scrape-token-0123456789abcdefghijklmnop")
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=OPS)).status == 401
    samples = await scrape(
        client, {"Authorization": "Bearer scrape-token-0123456789abcdefghijklmnop"}
    )
    assert ("oncall_escalation_steps_overdue", ()) in samples


async def test_without_a_metrics_token_the_main_port_refuses_metrics(make_client):
    client = await make_client(server_metrics_token="")
    response = await client.get("/metrics")
    assert response.status == 403
    error = (await response.json())["error"]
    assert "metrics_token" in error and "metrics_listen" in error
    assert "oncall_" not in await response.text()


async def test_scrapers_asking_together_cost_one_reading_of_the_queues(client):
    escalation = client.app[RUNTIME].escalation
    counting = escalation.queue_stats
    server = client.server.runner.server  # aiohttp's: it counts the requests it handles
    first = server.requests_count
    reads = 0

    async def all_arrived() -> bool:
        return server.requests_count - first >= 8

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        # Every read waits until all eight scrapes are being handled: they ask together.
        await eventually(all_arrived, what="eight scrapes in")
        return await counting(*args, **kwargs)

    escalation.queue_stats = counted  # type: ignore[method-assign]
    responses = await asyncio.gather(*(client.get("/metrics", headers=OPS) for _ in range(8)))
    assert [r.status for r in responses] == [200] * 8
    for response in responses:
        assert "oncall_escalation_steps_overdue" in await response.text()
    assert reads == 1
    # One scrape after another each reads afresh.
    await scrape(client)
    assert reads == 2
