"""The layout's rules, checked on every module by walking its imports.

- Pure code imports no I/O library. Only `store` modules, `db/`, `timers/`, `notify/http`,
  `notify/channels/`, `web/` and `imports/http` may import aiohttp, SQLAlchemy, redis,
  APScheduler and the other drivers.
- A package's `store` is its own: no other package imports it (they go through its
  service, or are given what they need inside one transaction).
- APScheduler is imported by `timers/scheduler` alone; the wall clock is read by `clock`
  alone.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / "oncall"
IO_LIBRARIES = {
    "aiohttp",
    "sqlalchemy",
    "redis",
    "apscheduler",
    "aiosqlite",
    "asyncpg",
    "aiosmtplib",
    "apprise",
    "alembic",
    "hiredis",
}
DOMAINS = {
    "directory",
    "ingest",
    "routing",
    "incidents",
    "escalation",
    "schedules",
    "notify",
    "audit",
    "maintenance",
    "accounts",
    "cluster",
}
IO_PLACES = ("db", "timers", "notify.http", "notify.channels", "web", "imports.http")


def module_name(path: pathlib.Path) -> str:
    """Return `oncall.x.y` for oncall/x/y.py (`oncall.x` for a package's __init__)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts}


def imports(tree: ast.AST) -> set[str]:
    """Return every module an AST imports, by its full dotted name (`from a import b`
    counts as `a` and `a.b`: b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def may_do_io(module: str) -> bool:
    """Return whether a module is one of the places allowed to import I/O libraries."""
    inner = module.removeprefix("oncall.")
    return inner.endswith(".store") or any(
        inner == place or inner.startswith(f"{place}.") for place in IO_PLACES
    )


def io_imports(module: str, tree: ast.AST) -> set[str]:
    """Return the I/O libraries a module imports though it may not."""
    if may_do_io(module):
        return set()
    return {name.split(".")[0] for name in imports(tree)} & IO_LIBRARIES


def foreign_stores(module: str, tree: ast.AST) -> set[str]:
    """Return the other packages' `store` modules a module imports."""
    own = module.split(".")[1] if module.count(".") >= 1 else ""
    return {
        name
        for name in imports(tree)
        if name.startswith("oncall.") and name.endswith(".store") and name.split(".")[1] != own
    }


def parse(module: str) -> ast.AST:
    return ast.parse(MODULES[module].read_text())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_no_io_library_unless_it_is_an_io_place(module: str) -> None:
    assert io_imports(module, parse(module)) == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_no_other_packages_store(module: str) -> None:
    assert foreign_stores(module, parse(module)) == set()


def test_the_pure_modules_are_every_module_outside_the_io_places() -> None:
    pure = {m for m in MODULES if not may_do_io(m)}
    # Each domain package has pure modules, and those an older test left out are covered.
    assert {m.split(".")[1] for m in pure if m.count(".") >= 2} >= DOMAINS
    assert {
        "oncall.schedules.rotation",
        "oncall.ingest.events_v2",
        "oncall.ingest.ratelimit",
        "oncall.directory.coverage",
        "oncall.escalation.steps",
        "oncall.settings",
        "oncall.notify.messages",
    } <= pure
    assert {
        "oncall.ingest.store",
        "oncall.db.engine",
        "oncall.web.app",
        "oncall.notify.http",
        "oncall.notify.channels.email",
    }.isdisjoint(pure)


def test_each_domain_package_has_its_store_and_only_it_reaches_it() -> None:
    stores = {m for m in MODULES if m.endswith(".store")}
    assert stores == {f"oncall.{d}.store" for d in DOMAINS - {"directory", "routing"}}


def test_the_checks_catch_what_they_forbid() -> None:
    """The two rules applied to modules that break them (so the tests above can fail)."""
    io = ast.parse("import sqlalchemy\nfrom redis.asyncio import Redis\n")
    assert io_imports("oncall.ingest.dedup", io) == {"sqlalchemy", "redis"}
    assert io_imports("oncall.ingest.store", io) == set()
    assert io_imports("oncall.notify.channels.slack", io) == set()
    reach = ast.parse("from oncall.notify import store\nfrom oncall.ingest.store import x\n")
    assert foreign_stores("oncall.escalation.service", reach) == {
        "oncall.notify.store",
        "oncall.ingest.store",
    }
    assert foreign_stores("oncall.notify.notifier", reach) == {"oncall.ingest.store"}


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    offenders = []
    for module, path in MODULES.items():
        text = path.read_text()
        if module != "oncall.clock" and (
            "datetime.now(" in text or "utcnow(" in text or "time.time(" in text
        ):
            offenders.append(module)
    assert offenders == []


def test_only_the_scheduler_imports_apscheduler() -> None:
    importers = sorted(
        m for m in MODULES if any(n.split(".")[0] == "apscheduler" for n in imports(parse(m)))
    )
    assert importers == ["oncall.timers.scheduler"]
