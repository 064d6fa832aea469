"""The decisions behind the listeners: connections per address, throttled log lines, the
file limit, listen addresses; and one computation shared by concurrent callers."""

from __future__ import annotations

import asyncio
import logging
import resource

import pytest

from oncall.web.coalesce import SingleFlight
from oncall.web.connections import (
    ACCEPT_ERROR,
    ConnectionLimit,
    LogThrottle,
    raised_file_limit,
    split_listen_address,
    throttled_accept_errors,
)


def test_an_address_gets_its_limit_and_a_freed_slot_back():
    limits = ConnectionLimit(2)
    assert [limits.admit("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert limits.admit("10.0.0.2")  # another address has its own count
    limits.release("10.0.0.1")
    assert limits.admit("10.0.0.1")
    assert not limits.admit("10.0.0.1")


def test_a_limit_of_zero_admits_everything_and_forgets_closed_addresses():
    limits = ConnectionLimit(0)
    assert all(limits.admit("10.0.0.1") for _ in range(1000))
    for _ in range(1000):
        limits.release("10.0.0.1")
    assert limits.open == {}


def test_a_throttled_line_goes_out_once_per_interval_with_the_count_held_back():
    throttle = LogThrottle(interval=60)
    assert throttle.allow(0.0) == 0
    assert [throttle.allow(t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert throttle.allow(60.0) == 3
    assert throttle.allow(61.0) is None
    assert throttle.allow(200.0) == 1


@pytest.mark.parametrize(
    ("soft", "hard", "wanted"),
    [
        # the usual case: up to the hard limit
        (1024, 524288, 524288),
        # already there
        (4096, 4096, 4096),
        # an unlimited hard limit is no number to ask for: leave the soft one
        (1024, resource.RLIM_INFINITY, 1024),
    ],
)
def test_the_soft_file_limit_asked_for(soft, hard, wanted):
    assert raised_file_limit(soft, hard) == wanted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_split_listen_address(text, expected):
    assert split_listen_address(text) == expected


async def test_accept_errors_are_throttled_and_other_errors_pass_through(caplog):
    loop = asyncio.get_running_loop()
    passed = []
    loop.set_exception_handler(lambda _loop, context: passed.append(context["message"]))
    try:
        handle = throttled_accept_errors(loop, LogThrottle(interval=60))
        with caplog.at_level(logging.ERROR, logger="oncall"):
            for _ in range(100):
                handle(loop, {"message": ACCEPT_ERROR, "exception": OSError(24, "EMFILE")})
            handle(loop, {"message": "something else"})
    finally:
        loop.set_exception_handler(None)
    assert len([r for r in caplog.records if "cannot accept" in r.getMessage()]) == 1
    assert passed == ["something else"]


async def test_callers_asking_together_share_one_run_and_later_ones_get_a_new_one():
    runs = 0
    gate = asyncio.Event()

    async def compute() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return runs

    shared = SingleFlight(compute)
    waiting = [asyncio.ensure_future(shared()) for _ in range(5)]
    await asyncio.sleep(0)  # let them all ask
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert await shared() == 2


async def test_a_caller_going_away_does_not_cancel_the_others_run():
    gate = asyncio.Event()

    async def compute() -> str:
        await gate.wait()
        return "done"

    shared = SingleFlight(compute)
    leaving, staying = asyncio.ensure_future(shared()), asyncio.ensure_future(shared())
    await asyncio.sleep(0)
    leaving.cancel()
    gate.set()
    assert await staying == "done"
