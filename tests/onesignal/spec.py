"""The committed OneSignal v1.2.2 structure fixture, and checks of requests against it."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]

FIXTURE = Path(__file__).parents[1] / "fixtures" / "onesignal_v1_schema.json"


@cache
def operations() -> dict[str, Any]:
    """Operation name -> method, path, auth, parameters, request body schema, SDK signature."""
    operations: dict[str, Any] = json.loads(FIXTURE.read_text())["operations"]
    return operations


def path_pattern(name: str) -> re.Pattern[str]:
    """The operation's path template as a regex over a received path."""
    template = operations()[name]["path"].split("?", 1)[0]
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$")


def check_request(name: str, request: Any) -> None:
    """Assert a recorded request matches operation `name` of the spec."""
    op = operations()[name]
    assert request.method == op["method"], f"{name}: {request.method} != {op['method']}"
    assert path_pattern(name).match(request.path), f"{name}: {request.path} vs {op['path']}"
    for param in op["parameters"]:
        if param["in"] == "query" and param["required"]:
            assert param["name"] in request.query, f"{name}: query lacks {param['name']}"
    body = op["request_body"]
    if body is None:
        assert request.body == b"", f"{name} takes no body, got {request.body!r}"
        return
    if request.body == b"" and not body["required"]:
        return
    jsonschema.validate(request.json, body["schema"])
