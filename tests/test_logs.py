"""The access log: skipped when its level is hidden, and signed links never written."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from oncall.web.access_log import AccessLogger


def test_access_log_is_skipped_when_info_is_hidden() -> None:
    logger = logging.getLogger("oncall.test.access")
    access = AccessLogger(logger, "")
    logger.setLevel(logging.WARNING)
    assert access.enabled is False
    logger.setLevel(logging.INFO)
    assert access.enabled is True


def test_signed_link_paths_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("oncall.test.access")
    logger.setLevel(logging.INFO)
    request = make_mocked_request("GET", "/a/secret-token-value?x=1")
    with caplog.at_level(logging.INFO, logger="oncall.test.access"):
        AccessLogger(logger, "").log(request, web.Response(status=200), 0.0123)
    [record] = caplog.records
    assert record.path == "/a/<signed link>"  # type: ignore[attr-defined]
    assert "secret-token-value" not in caplog.text
    assert (record.status, record.ms) == (200, 12.3)  # type: ignore[attr-defined]
