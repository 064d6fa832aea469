"""The OpenAPI document: valid OpenAPI 3.1, served without a credential, and naming exactly
the app's public routes.

The table is the router itself: every route `create_app` registers is public, and must be
in the document, unless it is a web UI page (its handler lives in oncall.web.pages), a
static file, or a signed link (pages for a person; oncall.web.openapi says why). A route
added later fails here until it is described, and a path the document names that no route
serves fails too. That the answers match the document is .ci/schemathesis's part.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator

from oncall.directory.holder import DirectoryHolder
from oncall.directory.parse import parse_directory
from oncall.settings import load_settings
from oncall.web.app import create_app
from oncall.web.openapi import PATH, document
from tests.support.factories import DIRECTORY_YAML

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Handlers of routes that are not part of the API: the web UI's pages, and the signed
# links' confirm-and-act pages.
NOT_API_MODULES = ("oncall.web.pages.", "oncall.web.routes.actions")


def public_routes(app: web.Application) -> set[tuple[str, str]]:
    """Return (method, path template) of every public route of `app`; the HEAD aiohttp adds
    beside each GET is left out (the document says every GET answers HEAD)."""
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None or isinstance(resource, web.StaticResource):
            continue
        module = getattr(route.handler, "__module__", "")
        if module.startswith(NOT_API_MODULES):
            continue
        found.add((route.method, resource.canonical))
    return found


def documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def make_app() -> web.Application:
    settings = load_settings({"ONCALL_SETTINGS": "/dev/null"})
    directory = DirectoryHolder(parse_directory(DIRECTORY_YAML, {}, "openapi.yaml"))
    return create_app(settings, directory)


def test_the_document_is_valid_openapi_3_1():
    errors = [str(e) for e in OpenAPIV31SpecValidator(document()).iter_errors()]
    assert errors == []
    assert document()["openapi"].startswith("3.1.")


def test_every_public_route_is_in_the_document():
    missing = public_routes(make_app()) - documented(document())
    assert missing == set(), "describe these routes in oncall/web/openapi.py"


def test_the_document_names_no_path_the_app_lacks():
    stale = documented(document()) - public_routes(make_app())
    assert stale == set()


def test_the_table_is_not_empty_by_a_mistake_in_the_filter():
    routes = public_routes(make_app())
    assert len(routes) >= 30
    assert ("GET", PATH) in routes
    pages = {"/", "/login", "/logout", "/me", "/oncall", "/status", "/maintenance"}
    assert not any(
        path in pages or path.startswith(("/static", "/a/", "/me/", "/incidents/", "/schedules/"))
        for _, path in routes
    )


def test_every_operation_has_an_id_a_credential_rule_and_answers():
    ids = []
    for path, item in document()["paths"].items():
        for method, op in item.items():
            assert "security" in op, (method, path)
            assert op["responses"], (method, path)
            ids.append(op["operationId"])
    assert len(ids) == len(set(ids))


async def test_the_app_serves_the_document_without_a_credential(client):
    response = await client.get(PATH)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == document()
