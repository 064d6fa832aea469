"""The writer process (`[database] writer = process`): transactions run in a child process.

The first tests drive `RemoteWriter` directly with the units of tests/writer_units.py;
then the service's own tests of ingest, pages, escalation, the API, Events v2 and
schedules run again here with `[database] writer = process` (the module's `make_settings`
below), so the option is tested end to end, not only the default thread the other
modules use. (The writer receives units of work pickled: the tests' helpers that read
the database are module-level functions for that reason, e.g. conftest.read_tables.)
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import exc

from oncall import migrate, store
from oncall.config import DatabaseSettings, Settings
from oncall.db import make_engine, sqlite_url
from oncall.directory import parse_directory
from oncall.prepared import row_class
from oncall.web.keys import DATABASE
from oncall.writer import RemoteWriter, WriterGone
from tests import writer_units as units
from tests.conftest import AM_AUTH
from tests.factories import DIRECTORY_YAML, make_alert, make_webhook

# The service's tests, run again on the writer process (see make_settings below). Left
# out: the two escalation tests that replace store functions in this process, which a
# writer process cannot see.
from tests.test_alertmanager_e2e import stack, test_alertmanager_end_to_end  # noqa: F401
from tests.test_api import (  # noqa: F401
    test_acknowledging_records_who_and_when_and_is_idempotent,
    test_an_incident_has_the_documented_fields,
    test_incidents_are_listed_newest_first_with_cursor_pagination,
    test_resolving_is_recorded_once_and_is_idempotent,
    test_the_status_filter_selects_incidents,
)
from tests.test_escalation import (  # noqa: F401
    test_a_schedule_target_pages_whoever_is_on_call_when_the_level_fires,
    test_a_schedule_with_nobody_on_call_is_recorded_and_the_others_are_paged,
    test_a_stale_or_duplicated_job_changes_nothing,
    test_an_acknowledged_incident_never_escalates_again,
    test_it_climbs_every_level_and_repeat_then_exhausts,
    test_resolving_removes_the_pending_job,
)
from tests.test_events_v2 import (  # noqa: F401
    test_a_bad_event_gets_400_with_its_errors_and_writes_nothing,
    test_a_trigger_without_dedup_key_gets_one,
    test_acting_on_an_unknown_dedup_key_changes_nothing,
    test_trigger_acknowledge_resolve,
)
from tests.test_ingest import (  # noqa: F401
    test_a_captured_alertmanager_group_ingests_correctly,
    test_a_new_occurrence_after_resolution_opens_a_new_incident,
    test_a_redelivered_occurrence_after_a_manual_resolve_opens_nothing,
    test_a_storm_of_2000_alerts_in_one_group_is_one_incident,
    test_captured_partial_then_full_resolve_auto_resolves,
    test_new_alerts_joining_an_acknowledged_incident_keep_it_acknowledged,
    test_the_same_group_delivered_100_times_gives_one_incident,
    test_two_groups_give_two_incidents,
)
from tests.test_notifications import (  # noqa: F401
    test_a_flaky_receiver_gets_the_page_on_the_third_attempt,
    test_a_page_reaches_a_webhook_signed_and_with_its_delivery_id,
    test_an_acknowledgement_stops_pages_not_yet_sent,
    test_resolution_sends_one_resolved_message_to_everyone_paged,
    test_the_link_flow_get_confirms_post_acknowledges,
)
from tests.test_schedules_api import (  # noqa: F401
    test_a_bad_override_is_rejected_and_writes_nothing,
    test_overrides_are_created_listed_and_deleted,
)

URL = "/api/v1/integrations/alertmanager"


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the writer process is SQLite's alone


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def build(**overrides: str) -> Settings:
        return make_settings(**{"database_writer": "process", **overrides})

    return build


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[RemoteWriter]:
    engine = make_engine(DatabaseSettings(f"sqlite+aiosqlite:///{tmp_path}/oncall.db", ""))
    asyncio.run(migrate.upgrade(engine))
    remote = RemoteWriter(sqlite_url(engine))
    asyncio.run(engine.dispose())
    yield remote
    remote.close()


def test_a_batch_runs_in_the_child_and_a_failing_unit_is_rolled_back_alone(writer):
    outcomes = writer.run_batch([(units.write, ("k1",)), (units.write, ("k2", True)),
                                 (units.write, ("k3",)), (units.pid, ())])
    assert outcomes[0] == (True, "k1") and outcomes[2] == (True, "k3")
    ok, error = outcomes[1]
    assert not ok and type(error) is ValueError and str(error) == "k2 failed after writing"
    assert any("in the database writer process" in note for note in error.__notes__)
    assert outcomes[3][0] and outcomes[3][1] != os.getpid()
    assert writer.run_batch([(units.keys, ())]) == [(True, ["k1", "k3"])]


def test_a_database_error_keeps_its_type(writer):
    writer.run_batch([(units.write, ("k1",))])
    [(ok, error)] = writer.run_batch([(units.write, ("k1",))])  # the key is unique
    assert not ok and isinstance(error, exc.IntegrityError)


def test_a_directory_is_sent_once_and_again_after_the_child_forgot_it(writer):
    first = parse_directory(DIRECTORY_YAML, {}, "a.yaml")
    second = parse_directory(DIRECTORY_YAML, {}, "b.yaml")
    seen = [writer.run_batch([(units.directory_seen, (d,))])[0][1]
            for d in (first, first, second, first)]
    assert seen[0] == seen[1] == seen[3]  # one copy in the child, reused
    assert seen[2] != seen[0]
    for _ in range(6):  # more directories than the child keeps: the first is forgotten
        writer.run_batch([(units.directory_seen, (parse_directory(DIRECTORY_YAML, {}, "c"),))])
    [(ok, _)] = writer.run_batch([(units.directory_seen, (first,))])
    assert ok  # sent again, not looked up in vain (a missing token fails the batch)


def test_a_lost_child_fails_its_batch_and_the_next_batch_starts_another(writer):
    writer.run_batch([(units.write, ("k1",))])
    [(_, before)] = writer.run_batch([(units.pid, ())])
    with pytest.raises(WriterGone):
        writer.run_batch([(units.write, ("k2",)), (units.exit_now, ())])
    [(_, after)] = writer.run_batch([(units.pid, ())])
    assert after != before
    assert writer.run_batch([(units.keys, ())]) == [(True, ["k1"])]  # k2 never committed


def test_a_failed_commit_fails_the_batch_and_the_child_goes_on(writer):
    [(_, before)] = writer.run_batch([(units.pid, ())])
    with pytest.raises(exc.IntegrityError):
        writer.run_batch([(units.write, ("k1",)), (units.violate_at_commit, ())])
    assert writer.run_batch([(units.keys, ()), (units.pid, ())]) == [(True, []),
                                                                    (True, before)]


def test_a_unit_that_cannot_be_sent_fails_its_batch_and_the_child_goes_on(writer):
    [(_, before)] = writer.run_batch([(units.pid, ())])
    with pytest.raises((AttributeError, pickle.PicklingError)):
        writer.run_batch([(lambda conn: None, ())])
    [(ok, error), (ok2, key)] = writer.run_batch([(units.unsendable, ()),
                                                  (units.write, ("k1",))])
    assert not ok and "cannot be sent back" in str(error)
    assert ok2 and key == "k1"
    assert writer.run_batch([(units.pid, ())]) == [(True, before)]


def test_closing_lets_the_child_exit_cleanly(writer):
    writer.run_batch([(units.write, ("k1",))])
    child = writer._child
    assert child is not None
    writer.close()
    assert child.process.returncode == 0


def test_prepared_rows_pickle_as_rows_of_the_same_class():
    row = row_class(("id", "status"))(7, "triggered")
    copy = pickle.loads(pickle.dumps(row))
    assert copy == row and type(copy) is type(row) and copy.status == "triggered"


async def test_the_service_survives_a_killed_writer(make_client):
    client = await make_client()
    database = client.app[DATABASE]

    async def deliver(name: str) -> int:
        body = make_webhook([make_alert("db1", alertname=name)], alertname=name)
        for _ in range(10):  # as Alertmanager does: a 503 is retried
            response = await client.post(URL, json=body, headers=AM_AUTH)
            if response.status != 503:
                return response.status
        return response.status

    assert await deliver("First") == 200
    child = database._writer._child
    os.kill(child.process.pid, signal.SIGKILL)
    await asyncio.to_thread(child.process.wait)
    assert await deliver("Second") == 200
    assert database._writer._child is not child
    counts = await database.run(store.count_rows)
    assert counts["incidents"] == 2
