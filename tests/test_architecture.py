"""Pure modules stay pure: they import no I/O library (checked by walking their imports)."""

from __future__ import annotations

import ast
import pathlib

import pytest

PURE = ["clock", "errors", "durations", "config", "matchers", "directory", "alertmanager",
        "dedup", "routing", "escalation", "retry", "links", "messages", "followups"]
FORBIDDEN = {"aiohttp", "sqlalchemy", "redis", "apscheduler", "aiosqlite", "asyncpg",
             "aiosmtplib", "apprise"}
PACKAGE = pathlib.Path(__file__).parent.parent / "oncall"


def imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_no_io_library(module):
    assert imported_roots(PACKAGE / f"{module}.py") & FORBIDDEN == set()


def test_only_the_clock_module_reads_the_wall_clock():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if path.name != "clock.py" and ("datetime.now(" in text or "utcnow(" in text):
            offenders.append(str(path))
    assert offenders == []


def test_only_the_timer_module_imports_apscheduler():
    importers = sorted(p.name for p in PACKAGE.rglob("*.py")
                       if "apscheduler" in imported_roots(p))
    assert importers == ["timer.py"]
