"""`[server] pin_cpu`: which CPU the service's threads are kept on, decided and applied."""

from __future__ import annotations

import os
import pathlib

import pytest

from oncall.affinity import AUTO, OFF, choose_cpu, parse_setting
from oncall.config import ConfigError, load_settings
from tests.conftest import REDIS_HOST, REDIS_PORT
from tests.process import ServiceProcess
from tests.test_cli import run_cli

ALLOWED = frozenset(os.sched_getaffinity(0))


def test_the_setting_is_auto_off_or_a_cpu_number():
    assert parse_setting("auto") == AUTO and parse_setting(" OFF ") == OFF
    assert parse_setting("3") == 3
    for bad in ("-1", "two", "1.5", ""):
        with pytest.raises(ValueError, match="auto, off or a CPU number"):
            parse_setting(bad)


def test_a_bad_setting_is_named_at_start_up():
    with pytest.raises(ConfigError) as caught:
        load_settings({"ONCALL_SERVER_PIN_CPU": "fast"})
    assert any("[server] pin_cpu" in p for p in caught.value.problems)
    assert load_settings({"ONCALL_SERVER_PIN_CPU": "off"}).server.pin_cpu == OFF


def test_auto_pins_the_sqlite_thread_writer_to_the_highest_cpu():
    assert choose_cpu(AUTO, frozenset({0, 1}), sqlite_thread=True) == 1
    assert choose_cpu(AUTO, frozenset({2, 5, 7}), sqlite_thread=True) == 7


def test_auto_leaves_the_scheduler_alone_where_pinning_gains_nothing():
    assert choose_cpu(AUTO, frozenset({0}), sqlite_thread=True) is None  # no choice
    # PostgreSQL (no database thread) and the writer process (there to use a second core).
    assert choose_cpu(AUTO, frozenset({0, 1}), sqlite_thread=False) is None
    assert choose_cpu(AUTO, None, sqlite_thread=True) is None  # the platform cannot pin
    assert choose_cpu(OFF, frozenset({0, 1}), sqlite_thread=True) is None


def test_an_explicit_cpu_must_be_one_the_process_may_use():
    assert choose_cpu(0, frozenset({0, 1}), sqlite_thread=False) == 0
    with pytest.raises(ValueError, match="CPU 4 is not one this process may use"):
        choose_cpu(4, frozenset({0, 1}), sqlite_thread=True)
    with pytest.raises(ValueError, match="cannot pin"):
        choose_cpu(0, None, sqlite_thread=True)
    with pytest.raises(ValueError, match="writer process would run on the same CPU"):
        choose_cpu(0, frozenset({0, 1}), sqlite_thread=False, writer_process=True)


@pytest.fixture
def sqlite_env(tmp_path, key_prefix):
    """The service on SQLite with its database thread: where pinning applies."""
    return {"ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db",
            "ONCALL_REDIS_KEY_PREFIX": key_prefix, "ONCALL_REDIS_HOST": REDIS_HOST,
            "ONCALL_REDIS_PORT": str(REDIS_PORT)}


def thread_cpus(pid: int) -> dict[str, str]:
    """Return each thread's allowed CPU list, as /proc shows it."""
    cpus = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus[task.name] = line.split(":", 1)[1].strip()
    return cpus


def cpu_list(cpus: frozenset[int]) -> set[str]:
    """Return the ways /proc may write a CPU set (a range, or a comma list)."""
    ordered = sorted(cpus)
    forms = {",".join(map(str, ordered))}
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
        forms.add(f"{ordered[0]}-{ordered[-1]}")
    return forms


@pytest.mark.parametrize("setting", ["auto", "off", str(min(ALLOWED))])
async def test_every_thread_of_the_service_runs_where_the_setting_says(
        sqlite_env, tmp_path, setting):
    service = ServiceProcess({**sqlite_env, "ONCALL_SERVER_PIN_CPU": setting},
                             tmp_path / "oncall.log")
    await service.start()  # answering: its database thread has run the reconcile
    try:
        assert service.proc is not None
        cpus = thread_cpus(service.proc.pid)
    finally:
        assert service.stop() == 0
    assert len(cpus) >= 2  # the event loop and the database thread at least
    if setting == "off" or (setting == "auto" and len(ALLOWED) < 2):
        expected = cpu_list(ALLOWED)
    elif setting == "auto":
        expected = {str(max(ALLOWED))}
    else:
        expected = {setting}
    assert set(cpus.values()) <= expected, cpus


def test_a_cpu_the_process_may_not_use_stops_start_up(sqlite_env):
    result = run_cli(env={**sqlite_env, "ONCALL_SERVER_PIN_CPU": str(max(ALLOWED) + 1)})
    assert result.returncode == 2
    assert "[server] pin_cpu" in result.stderr and "is not one this process may use" in (
        result.stderr)


def test_check_config_names_a_cpu_the_process_may_not_use(sqlite_env):
    result = run_cli("check-config", env={**sqlite_env,
                                          "ONCALL_SERVER_PIN_CPU": str(max(ALLOWED) + 1)})
    assert result.returncode == 1
    assert "[server] pin_cpu" in result.stderr


def test_a_refused_pin_leaves_auto_unpinned_and_stops_an_explicit_cpu(monkeypatch):
    import app
    from oncall import affinity

    def refuse(cpu: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(affinity, "pin", refuse)
    monkeypatch.setattr(affinity, "allowed_cpus", lambda: frozenset({0, 1}))
    sqlite = {"ONCALL_DATABASE_URL": "sqlite+aiosqlite:///unused.db"}
    assert app._pin(load_settings({**sqlite, "ONCALL_SERVER_PIN_CPU": "auto"})) is None
    with pytest.raises(SystemExit) as stopped:
        app._pin(load_settings({**sqlite, "ONCALL_SERVER_PIN_CPU": "1"}))
    assert stopped.value.code == 2
