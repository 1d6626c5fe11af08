"""Tool output schemas that are quick to check: the SDK's client validates every structured result against the
tool's outputSchema with `jsonschema`, and pydantic's schema sends it through a `$ref` lookup and an `anyOf` for
every optional nested model (a 1,024-item `batch` result: thousands of each). The same schema, rewritten:
definitions used by no cycle are written in place, and `anyOf: [{"type": T, ...}, {"type": "null"}]` becomes
`"type": [T, "null"]`. What it accepts is unchanged (`tests/unit/test_output_schemas.py` checks both on the same
instances)."""

from __future__ import annotations

from typing import Any

NULL = {"type": "null"}
# keywords that would refuse a null the `anyOf` allowed, once beside `"type": [T, "null"]`
NOT_FOR_NULL = ("enum", "const", "allOf", "anyOf", "oneOf", "not", "if", "$ref", "$dynamicRef")
ANNOTATIONS = {"title", "description", "default", "examples"}  # no effect on what validates


def _merge(outer: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any] | None:
    """Both schemas' keywords in one (the outer's annotations win), or None where a validation keyword is in both."""
    if (set(outer) & set(inner)) - ANNOTATIONS:
        return None
    return inner | outer


def quick_to_check(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its acyclic `$defs` inlined and nullable single-type branches merged; unchanged when a
    `$ref` has validation keywords beside it or a discriminator names definitions (pydantic writes neither for
    our tools; inlining those would change what validates or leave the mapping pointing nowhere)."""
    if not _plain(schema):
        return schema
    defs = schema.get("$defs", {})
    cyclic = {name for name in defs if _reaches(defs, name, name, set())}
    out = _rewrite({k: v for k, v in schema.items() if k != "$defs"}, defs, cyclic)
    kept = {name: _rewrite(defs[name], defs, cyclic) for name in cyclic}
    return out | ({"$defs": kept} if kept else {})


def _plain(node: Any) -> bool:
    """No `discriminator`, and nothing but annotations beside any `$ref`."""
    if isinstance(node, list):
        return all(_plain(value) for value in node)
    if not isinstance(node, dict):
        return True
    if "discriminator" in node or ("$ref" in node and set(node) - ANNOTATIONS - {"$ref"}):
        return False
    return all(_plain(value) for value in node.values())


def _ref_name(node: Any) -> str | None:
    ref = node.get("$ref") if isinstance(node, dict) else None
    return ref.removeprefix("#/$defs/") if isinstance(ref, str) and ref.startswith("#/$defs/") else None


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [_ref_name(node)] if _ref_name(node) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _reaches(defs: dict[str, Any], start: str, target: str, seen: set[str]) -> bool:
    for name in _refs(defs.get(start, {})):
        if name == target:
            return True
        if name not in seen:
            seen.add(name)
            if _reaches(defs, name, target, seen):
                return True
    return False


def _rewrite(node: Any, defs: dict[str, Any], cyclic: set[str]) -> Any:
    if isinstance(node, list):
        return [_rewrite(value, defs, cyclic) for value in node]
    if not isinstance(node, dict):
        return node
    name = _ref_name(node)
    if name is not None and name not in cyclic and name in defs:
        node = defs[name] | {k: v for k, v in node.items() if k != "$ref"}  # only annotations beside it: they win
    node = {key: _rewrite(value, defs, cyclic) for key, value in node.items()}
    branches = node.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and NULL in branches:
        other = branches[0] if branches[1] == NULL else branches[1]
        if isinstance(other.get("type"), str) and not any(k in other for k in NOT_FOR_NULL):
            merged = _merge({k: v for k, v in node.items() if k != "anyOf"}, other)
            if merged is not None:
                return merged | {"type": [other["type"], "null"]}
    return node
