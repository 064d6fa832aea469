"""Validate the PagerDuty fixtures against PagerDuty's published OpenAPI schema.

    python tests/data/imports/pagerduty/check_shapes.py path/to/openapiv3.json

The schema is github.com/PagerDuty/api-schema, reference/REST/openapiv3.json. Each fixture is
checked against the 200 response schema of the operation it answers (OpenAPI 3.0's
`nullable` read as JSON Schema's null type); prints each problem and exits 1 when any.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import jsonschema

HERE = pathlib.Path(__file__).parent
# fixture file → the path of the operation (GET) whose answer it is
OPERATIONS = {
    "users.json": "/users",
    "schedules.json": "/schedules",
    "schedule_PSCHED1.json": "/schedules/{id}",
    "schedule_PSCHED2.json": "/schedules/{id}",
    "schedule_PSCHED3.json": "/schedules/{id}",
    "escalation_policies.json": "/escalation_policies",
    "services.json": "/services",
    **{
        path.name: "/services/{id}/integrations/{integration_id}"
        for path in sorted(HERE.glob("integration_*.json"))
    },
    **{
        f"contact_methods/{path.name}": "/users/{id}/contact_methods"
        for path in sorted(HERE.glob("contact_methods/*.json"))
    },
    **{
        f"notification_rules/{path.name}": "/users/{id}/notification_rules"
        for path in sorted(HERE.glob("notification_rules/*.json"))
    },
}


def nullable(node: Any) -> Any:
    """Return the schema with OpenAPI 3.0's `nullable: true` as a null type (or anyOf)."""
    if isinstance(node, list):
        return [nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if isinstance(found.get("type"), str):
            found["type"] = [found["type"], "null"]
        else:
            found = {"anyOf": [found, {"type": "null"}]}
    return found


def main(schema_path: str) -> int:
    document = nullable(json.loads(pathlib.Path(schema_path).read_text()))
    problems = 0
    for name, path in OPERATIONS.items():
        escaped = path.replace("~", "~0").replace("/", "~1")
        pointer = f"#/paths/{escaped}/get/responses/200/content/application~1json/schema"
        validator = jsonschema.Draft202012Validator({**document, "$ref": pointer})
        for error in validator.iter_errors(json.loads((HERE / name).read_text())):
            problems += 1
            where = "/".join(str(p) for p in error.absolute_path)
            print(f"{name}: {where}: {error.message[:200]}")
        print(f"{name}: checked against GET {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
