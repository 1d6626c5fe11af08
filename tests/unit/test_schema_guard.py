"""The schema guard on its own (no engine): a client's `json_schema` may only refer inside itself; every other
reference (http, file, a relative document, a `$id` base, `$dynamicRef`) is refused with its location, as are
dangling pointers, unknown dialects, invalid, oversize and over-deep schemas; the validators never retrieve
anything, and big checks run off the event loop. Through every tool on the real engine:
tests/integration/test_schema_safety.py."""

from __future__ import annotations

import anyio
import jsonschema
import pytest

from mcp_llm import schema_guard
from mcp_llm.errors import InputError
from tests.support.schemas import Listener, hostile_schemas, nested

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("case", range(7))
def test_guard_refuses_every_reference_outside_the_schema(case: int) -> None:
    schema, ref, location = hostile_schemas("http://127.0.0.1:9")[case]
    with pytest.raises(InputError) as caught:
        schema_guard.check_client_schema(schema)
    message = str(caught.value)
    assert repr(ref) in message and f"at {location}" in message, message
    with pytest.raises(InputError):
        schema_guard.validator_for(schema)
    with pytest.raises(InputError):
        schema_guard.check_forwardable(schema)


def test_guard_accepts_local_references_and_validates_through_them() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"city": {"type": "string", "minLength": 1}, "tree": {"anyOf": [{"type": "null"}, {"$ref": "#"}]}},
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/city"}, "next": {"$ref": "#/$defs/tree"}},
        "required": ["city"],
    }
    validator = schema_guard.validator_for(schema)
    schema_guard.validate(validator, {"city": "Paris", "next": {"city": "Lyon", "next": None}})
    with pytest.raises(jsonschema.ValidationError):
        schema_guard.validate(validator, {"city": ""})
    schema_guard.check_client_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"})


def test_guard_refuses_dangling_pointers_unknown_dialects_and_invalid_schemas() -> None:
    with pytest.raises(InputError, match=r"'#/\$defs/missing' at properties.a, which points to nothing"):
        schema_guard.check_client_schema({"properties": {"a": {"$ref": "#/$defs/missing"}}})
    with pytest.raises(InputError, match="unknown `\\$schema`"):
        schema_guard.check_client_schema({"$schema": "http://127.0.0.1:9/meta", "type": "string"})
    with pytest.raises(InputError, match="not a valid JSON Schema"):
        schema_guard.check_client_schema({"type": "no-such-type"})
    with pytest.raises(InputError, match="must be a JSON object"):
        schema_guard.check_client_schema(["type", "string"])
    # draft 4 names its base-URI keyword `id`
    with pytest.raises(InputError, match="may not set id"):
        schema_guard.check_client_schema({"$schema": "http://json-schema.org/draft-04/schema#", "id": "http://x/"})
    # a property named `$ref` or `$id` is a property, not a reference
    schema_guard.check_client_schema({"properties": {"$ref": {"type": "string"}, "$id": {"type": "integer"}}})


def test_guard_limits_size_and_depth() -> None:
    schema_guard.check_client_schema(nested(30))  # 31 levels
    with pytest.raises(InputError, match=f"nested more than {schema_guard.MAX_SCHEMA_DEPTH} levels deep"):
        schema_guard.check_client_schema(nested(40))
    with pytest.raises(InputError, match="nested more than"):
        schema_guard.check_client_schema(nested(5000))  # no RecursionError: the walk is iterative
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(4000)}}
    with pytest.raises(InputError, match="characters as JSON; the limit is 65,536"):
        schema_guard.check_client_schema(wide)


def test_the_registry_never_retrieves_even_a_reference_the_check_would_refuse(listener: Listener) -> None:
    schema = {"properties": {"a": {"$ref": f"{listener.url}/x"}}}
    validator = jsonschema.Draft202012Validator(schema, registry=schema_guard.NO_RETRIEVAL)
    with pytest.raises(InputError, match="cannot be resolved inside the schema"):
        schema_guard.validate(validator, {"a": "x"})
    assert listener.connections == []


async def test_checks_run_off_the_event_loop() -> None:
    """A large schema's check runs in a worker thread while the loop keeps ticking."""
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(2500)}}
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        validator = await schema_guard.validator_for_async(schema)
        tg.cancel_scope.cancel()
    assert validator is not None and ticks > 1
