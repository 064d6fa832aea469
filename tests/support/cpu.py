"""A pytest plugin that writes each test's CPU time, to find where the suite's time goes:
`ONCALL_TEST_CPU_LOG=cpu.tsv python -m pytest -p tests.support.cpu ...` appends one line
per test: its node id, this process's CPU seconds (every thread) and its children's
(the services it started and waited for), setup to teardown."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator

import pytest


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    own, children = time.process_time(), _children()
    yield
    path = os.environ.get("ONCALL_TEST_CPU_LOG")
    if path:
        line = f"{item.nodeid}\t{time.process_time() - own:.3f}\t{_children() - children:.3f}\n"
        with open(path, "a") as log:
            log.write(line)
