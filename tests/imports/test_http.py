"""The importers' HTTP client: pages, retries, bounds, and where the token may go."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from oncall.imports import http
from oncall.imports.http import ApiClient, FetchError, offset_pages


class Script:
    """Answers each GET with the next scripted (status, body, headers), recording it."""

    def __init__(self, *answers: tuple[int, object, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str, list[tuple[str, str]], str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            (request.path, list(request.query.items()), request.headers.get("X-Key", ""))
        )
        status, body, headers = self.answers.pop(0)
        if isinstance(body, bytes):
            return web.Response(status=status, body=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def serve(aiohttp_server):
    sessions = []

    async def start(script: Script, sleeps: list[float] | None = None) -> ApiClient:
        server = await aiohttp_server(script.app())
        session = aiohttp.ClientSession()
        sessions.append(session)

        async def sleep(seconds: float) -> None:
            (sleeps if sleeps is not None else []).append(seconds)

        return ApiClient(session, str(server.make_url("/api/")), {"X-Key": "k"}, sleep)

    yield start
    for session in sessions:
        await session.close()


async def test_it_follows_offset_pages_with_repeated_list_parameters(serve):
    script = Script(
        (200, {"users": [1, 2], "limit": 2, "offset": 0, "more": True}, {}),
        (200, {"users": [3], "limit": 2, "offset": 2, "more": False}, {}),
    )
    client = await serve(script)
    found = await client.get_pages(
        "users", "users", offset_pages, {"limit": 2, "include[]": ["a", "b"]}
    )
    assert found == [1, 2, 3]
    assert [query for _, query, _ in script.seen] == [
        [("limit", "2"), ("include[]", "a"), ("include[]", "b")],
        [("limit", "2"), ("include[]", "a"), ("include[]", "b"), ("offset", "2")],
    ]
    assert {path for path, _, _ in script.seen} == {"/api/users"}
    assert {key for _, _, key in script.seen} == {"k"}


async def test_it_follows_a_next_url_on_the_same_host(serve):
    script = Script(
        (200, {"results": [1], "next": "/api/users?page=2"}, {}),
        (200, {"results": [2], "next": None}, {}),
    )
    client = await serve(script)
    found = await client.get_pages("users", "results", lambda body, _: body["next"])
    assert found == [1, 2]
    assert script.seen[1][:2] == ("/api/users", [("page", "2")])


async def test_it_does_not_take_the_token_to_another_host(serve):
    script = Script((200, {"results": [1], "next": "http://elsewhere.example/steal"}, {}))
    client = await serve(script)
    with pytest.raises(FetchError, match="not on the base URL's host"):
        await client.get_pages("users", "results", lambda body, _: body["next"])
    assert len(script.seen) == 1


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        # 429 with Retry-After, then success: waits what the header says
        ([(429, {}, {"Retry-After": "2"}), (200, {"ok": 1}, {})], ([2.0], {"ok": 1})),
        # 503 twice, then success: waits 1s and 2s
        ([(503, {}, {}), (503, {}, {}), (200, {"ok": 1}, {})], ([1.0, 2.0], {"ok": 1})),
        # a huge Retry-After is capped
        ([(429, {}, {"Retry-After": "3600"}), (200, {}, {})], ([30.0], {})),
    ],
)
async def test_it_retries_429_and_5xx(serve, answers, outcome):
    sleeps: list[float] = []
    client = await serve(Script(*answers), sleeps)
    assert await client.get("x") == outcome[1]
    assert sleeps == outcome[0]


async def test_it_gives_up_after_its_retries(serve):
    sleeps: list[float] = []
    client = await serve(Script(*[(500, {"error": "down"}, {})] * 4), sleeps)
    with pytest.raises(FetchError, match=r"GET /api/x: 500: \{\"error\": \"down\"\}"):
        await client.get("x")
    assert len(sleeps) == http.MAX_RETRIES


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": {"message": "Unauthorized"}}, "401: the API token was refused"),
        (403, {}, "403: the API token was refused"),
        (404, {}, "GET /api/x: 404"),
        (302, b"", "GET /api/x: 302"),  # redirects are not followed with the token
        (200, b"<html>", "the answer is not JSON"),
    ],
)
async def test_it_names_what_went_wrong(serve, status, body, message):
    client = await serve(Script((status, body, {"Location": "http://elsewhere.example/"})))
    with pytest.raises(FetchError, match=message):
        await client.get("x")


async def test_it_bounds_an_answer(serve, monkeypatch):
    monkeypatch.setattr(http, "MAX_BODY", 100)
    client = await serve(Script((200, {"users": ["x" * 200]}, {})))
    with pytest.raises(FetchError, match="larger than 100 bytes"):
        await client.get("x")


async def test_a_listing_without_its_list_is_an_error(serve):
    client = await serve(Script((200, {"something": "else"}, {})))
    with pytest.raises(FetchError, match="no list of items"):
        await client.get_pages("users", "users", offset_pages)


async def test_a_base_url_must_be_http():
    with pytest.raises(FetchError, match="not an http"):
        async with http.open_client("ftp://example.com", {}):
            pass


@pytest.mark.parametrize(
    ("body", "params", "following"),
    [
        ({"more": False, "offset": 0, "limit": 2}, [("limit", "2")], None),
        (
            {"more": True, "offset": 4, "limit": 2},
            [("limit", "2"), ("offset", "4")],
            [("limit", "2"), ("offset", "6")],
        ),
        ({"more": True, "offset": 0, "limit": 0, "users": []}, [], None),  # no progress
    ],
)
def test_offset_pages(body, params, following):
    assert offset_pages(body, params) == following
