"""The HTTP ceiling: a one-process aiohttp server that reads the body and answers "ok".

`python bench/hello.py PORT`; the ingest benchmark drives it with the same client and
payloads as the service, so each ingest figure can also be given as a fraction of it.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "ok"})


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
