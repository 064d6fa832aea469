"""Every response says nosniff, keeps its URL out of Referer and names no versions; HTML
pages (the signed links' pages) may not be framed."""

from __future__ import annotations

import pytest

from oncall.web.headers import HTML_POLICY, html_policy
from tests.support.factories import ALICE_TOKEN


def assert_common(headers) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Server"] == "oncall"


async def test_json_responses_carry_the_common_headers(client):
    for path, headers in (
        ("/api/v1/incidents", {"Authorization": f"Bearer {ALICE_TOKEN}"}),
        ("/api/v1/incidents", {}),  # a 401 from the error middleware
        ("/no-such-page", {}),  # aiohttp's own 404
    ):
        response = await client.get(path, headers=headers)
        assert response.content_type == "application/json", path
        assert_common(response.headers)
        assert "X-Frame-Options" not in response.headers


async def test_a_signed_link_page_cannot_be_framed(client):
    for method in ("GET", "POST"):
        response = await client.request(method, "/a/not-a-signed-token")
        assert response.status == 403
        assert response.content_type == "text/html"
        assert_common(response.headers)
        assert response.headers["X-Frame-Options"] == "DENY"
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy
        assert "default-src 'none'" in policy  # the page's own policy is kept


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        # no policy of its own: the strict default
        (None, HTML_POLICY),
        ("", HTML_POLICY),
        # its own policy, frame-ancestors added
        ("default-src 'none'", "default-src 'none'; frame-ancestors 'none'"),
        ("default-src 'none'; ", "default-src 'none'; frame-ancestors 'none'"),
        # its own frame-ancestors are left as they are
        ("frame-ancestors 'self'", "frame-ancestors 'self'"),
    ],
)
def test_html_policy(existing, expected):
    assert html_policy(existing) == expected
