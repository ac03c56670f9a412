"""Distil OneSignal's v1.2.2 OpenAPI spec and SDK reference into the compact test fixture.

Run by hand when the spec changes; the tests read only the committed JSON it writes:

    python scripts/extract_onesignal_schema.py \
        --spec path/to/openapi-v1.2.2.json \
        --reference path/to/sdk-reference.md \
        --out tests/fixtures/onesignal_v1_schema.json

`--spec` is OneSignal's OpenAPI document v1.2.2 (the 37 operations of its REST API) and
`--reference` the reference of its Python SDK that names each operation's method; neither is
kept in this repository.

Kept per operation: HTTP method, path, auth kind, parameters (name, place, required, type),
the request body as a JSON Schema with `$ref`s inlined (types, properties, items, required,
enums; OpenAPI's `nullable` turned into a `"null"` type), and the SDK method's positional and
optional parameter names. Descriptions, examples and formats are dropped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

# Keys of a schema that describe structure; everything else (prose, examples) is dropped.
_STRUCTURAL = ("type", "properties", "items", "required", "enum", "additionalProperties")
_COMBINATORS = ("allOf", "anyOf", "oneOf")
# One operation of the spec has no operationId; the SDK reference names it.
_UNNAMED = {("delete", "/apps/{app_id}/users/by/{alias_label}/{alias_id}"): "delete_user"}


def compact(schema: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Return `schema` with refs inlined and only its structural keys."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            raise SystemExit(f"recursive schema {name}: extend this script to keep $defs")
        return compact(components[name], components, (*seen, name))
    out: dict[str, Any] = {}
    for key in _COMBINATORS:
        if key in schema:
            out[key] = [compact(part, components, seen) for part in schema[key]]
    for key in _STRUCTURAL:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            value = {name: compact(sub, components, seen) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            value = compact(value, components, seen)
        out[key] = value
    if schema.get("nullable"):
        _allow_null(out)
    return out


def _allow_null(out: dict[str, Any]) -> None:
    if "type" in out:
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": param["name"],
        "in": param["in"],
        "required": bool(param.get("required")),
        "type": param.get("schema", {}).get("type", "string"),
    }


def _request_body(op: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    body = op.get("requestBody")
    if not body:
        return None
    schema = body["content"]["application/json"]["schema"]
    return {"required": bool(body.get("required")), "schema": compact(schema, components)}


def sdk_signatures(reference: str) -> dict[str, dict[str, list[str]]]:
    """Positional and optional parameter names of each SDK method, from its usage examples."""
    calls: dict[str, dict[str, list[str]]] = {}
    for name, args in re.findall(r"api_instance\.(\w+)\(([^)]*)\)", reference):
        positional = [a.strip() for a in args.split(",") if a.strip() and "=" not in a]
        optional = [a.split("=")[0].strip() for a in args.split(",") if "=" in a]
        entry = calls.setdefault(name, {"positional": positional, "optional": []})
        entry["optional"] = sorted({*entry["optional"], *optional})
    return calls


def extract(spec: dict[str, Any], reference: str) -> dict[str, Any]:
    """Build the fixture document."""
    components = spec["components"]["schemas"]
    signatures = sdk_signatures(reference)
    operations: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            name = op.get("operationId") or _UNNAMED[(method, path)]
            security = op.get("security") or [{"app_key": []}]
            operations[name] = {
                "method": method.upper(),
                "path": path,
                "auth": next(iter(security[0])),
                "parameters": [_parameter(p) for p in op.get("parameters", [])],
                "request_body": _request_body(op, components),
                "sdk": signatures[name],
            }
    return {
        "source": f"OneSignal OpenAPI {spec['info']['version']}, structure only",
        "operations": dict(sorted(operations.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="OneSignal's OpenAPI v1.2.2")
    parser.add_argument("--reference", type=Path, required=True, help="its SDK's reference")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/onesignal_v1_schema.json"))
    args = parser.parse_args(argv)
    for source in (args.spec, args.reference):
        if not source.is_file():
            print(f"error: {source} not found; pass --spec/--reference", file=sys.stderr)
            return 2
    document = extract(json.loads(args.spec.read_text()), args.reference.read_text())
    args.out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"wrote {len(document['operations'])} operations to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
