"""Tool output schemas rewritten to be quick to check accept exactly what pydantic's schemas accept: every tool's
schema, on an instance built from it and on every one-place mutation of that instance."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp.server.mcpserver.tools import Tool

from mcp_llm.server.app import all_tools
from mcp_llm.server.output_schemas import quick_to_check

REPLACEMENTS = (None, "x", 1, 1.5, True, [], {}, [None], {"zz": 1})


def example(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    """An instance of the schema with every property filled (nested definitions to a few levels)."""
    if "$ref" in schema:
        return None if depth > 4 else example(defs[schema["$ref"].removeprefix("#/$defs/")], defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example(schema["anyOf"][0], defs, depth)
    kind = schema.get("type")
    if kind == "object":
        extra = schema.get("additionalProperties")
        more = {"key": example(extra, defs, depth)} if isinstance(extra, dict) else {}
        return {name: example(sub, defs, depth) for name, sub in schema.get("properties", {}).items()} | more
    if kind == "array":
        return [example(schema.get("items", {}), defs, depth)] if depth <= 4 else []
    return {"string": "s", "integer": 2, "number": 2.5, "boolean": False, "null": None}.get(kind, "s")


def mutations(value: Any) -> list[Any]:
    """The value with one place (itself, a key's value, a list element, a key dropped or added) changed."""
    out = [r for r in REPLACEMENTS if r != value]
    if isinstance(value, dict):
        for key, inner in value.items():
            out.append({k: v for k, v in value.items() if k != key})
            out += [{**value, key: changed} for changed in mutations(inner)]
        out.append({**value, "unexpected": 1})
    if isinstance(value, list) and value:
        out += [[changed, *value[1:]] for changed in mutations(value[0])]
    return out


TOOLS = [tool for tool in all_tools() if tool.output_schema]


@pytest.mark.parametrize("tool", TOOLS, ids=[tool.name for tool in TOOLS])
def test_the_quick_schema_accepts_what_the_original_accepts(tool: Any) -> None:
    original = Tool.from_function(tool.fn).output_schema  # the SDK's own schema for the same function
    published = tool.output_schema
    assert published == quick_to_check(copy.deepcopy(published))  # rewriting twice changes nothing
    slow, quick = Draft202012Validator(original), Draft202012Validator(published)
    Draft202012Validator.check_schema(published)
    base = example(original, original.get("$defs", {}))
    checked = [base, *mutations(base)]
    differ = [v for v in checked if slow.is_valid(v) != quick.is_valid(v)]
    assert not differ, differ[:3]
    assert slow.is_valid(base) and len(checked) > 20


def test_nullable_models_become_one_type_list_and_cycles_keep_their_definition() -> None:
    schema = {
        "type": "object",
        "properties": {
            "usage": {"anyOf": [{"$ref": "#/$defs/Usage"}, {"type": "null"}], "default": None},
            "kind": {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]},
            "tree": {"$ref": "#/$defs/Node"},
        },
        "$defs": {
            "Usage": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
            "Node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}},
        },
    }
    quick = quick_to_check(schema)
    assert quick["properties"]["usage"] == {
        "default": None,
        "type": ["object", "null"],
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
    }
    assert "anyOf" in quick["properties"]["kind"]  # an enum would refuse the null: left as it was
    assert quick["$defs"] == {"Node": schema["$defs"]["Node"]}


TRICKY = {
    "discriminated": {
        "type": "object",
        "properties": {
            "pet": {
                "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
                "discriminator": {"propertyName": "kind", "mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"}},
            }
        },
        "$defs": {
            "Cat": {"type": "object", "properties": {"kind": {"const": "cat"}}, "required": ["kind"]},
            "Dog": {"type": "object", "properties": {"kind": {"const": "dog"}}, "required": ["kind"]},
        },
    },
    "keywords beside a ref": {
        "type": "object",
        "properties": {"m": {"$ref": "#/$defs/M", "additionalProperties": False}},
        "$defs": {"M": {"type": "object", "properties": {"a": {"type": "integer"}}}},
    },
    "nullable with a composition inside": {
        "type": "object",
        "properties": {"x": {"anyOf": [{"type": "object", "allOf": [{"required": ["a"]}]}, {"type": "null"}]}},
    },
}


@pytest.mark.parametrize("name", list(TRICKY))
def test_schemas_it_must_not_flatten_keep_their_meaning(name: str) -> None:
    schema = TRICKY[name]
    quick = quick_to_check(copy.deepcopy(schema))
    slow, fast = Draft202012Validator(schema), Draft202012Validator(quick)
    cases = [
        {"pet": {"kind": "cat"}},
        {"m": {"a": 1}},
        {"m": {"a": 1, "b": 2}},
        {"x": None},
        {"x": {}},
        {"x": {"a": 1}},
    ]
    assert [slow.is_valid(c) for c in cases] == [fast.is_valid(c) for c in cases]
    if name != "nullable with a composition inside":
        assert quick == schema  # left as pydantic wrote it
