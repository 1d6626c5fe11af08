"""A client's `json_schema` never makes the server fetch anything (issue 19, item 1).

A real TCP listener on loopback stands in for the address a hostile `$ref` points to: every tool call
(and the job runner, and the remote backend) must refuse the schema with a message naming the
reference, and the listener must see zero connections. Before the guard, `generate` opened one
(jsonschema's default `urlopen` retrieval, on the event loop).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_llm import schema_guard
from mcp_llm.core.services import Services
from mcp_llm.errors import InputError
from mcp_llm.schemas import SamplingOptions

pytestmark = pytest.mark.anyio

CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer as JSON."}]


class Listener:
    """A real listening socket on 127.0.0.1 that records (and drops) every connection it is offered."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()  # an old server would get an error at once instead of hanging on a silent peer

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def hostile_schemas(url: str) -> list[tuple[dict, str, str]]:
    """(schema, the offending reference as the error names it, where) for each way to point outside."""
    base = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    return [
        ({**base, "not": {"$ref": f"{url}/x"}}, f"{url}/x", "not"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "not": {"$ref": f"{url}/nested"}}}},
            f"{url}/nested",
            "properties.a.not",
        ),
        ({"type": "array", "items": {"$ref": f"{url}/items.json"}}, f"{url}/items.json", "items"),
        (
            {**base, "$defs": {"remote": {"$id": f"{url}/base/", "type": "string"}}},
            f"{url}/base/",
            "$defs.remote",
        ),
        ({**base, "properties": {"a": {"$ref": "file:///etc/passwd"}}}, "file:///etc/passwd", "properties.a"),
        ({**base, "allOf": [{"$dynamicRef": f"{url}/dyn"}]}, f"{url}/dyn", "allOf.0"),
        ({**base, "not": {"$ref": "other.json#/x"}}, "other.json#/x", "not"),
    ]


# --- the guard itself (no engine) ---


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


def nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


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


# --- every tool, through a real MCP client and the real engine ---


def error_text(result) -> str:
    assert result.is_error, result.content
    return result.content[0].text


async def test_generate_refuses_remote_refs_and_fetches_nothing(client: Client, listener: Listener) -> None:
    for schema, ref, location in hostile_schemas(listener.url):
        result = await client.call_tool(
            "generate", {"messages": CAPITAL, "temperature": 0, "max_tokens": 16, "json_schema": schema}
        )
        message = error_text(result)
        assert repr(ref) in message and f"at {location}" in message, message
    assert listener.connections == []


async def test_batch_refuses_remote_refs_and_fetches_nothing(client: Client, listener: Listener) -> None:
    for schema, ref, _ in hostile_schemas(listener.url):
        result = await client.call_tool(
            "batch",
            {"prompts": ["one", "two"], "temperature": 0, "max_tokens": 8, "json_schema": schema, "wait": True},
        )
        assert repr(ref) in error_text(result)
    assert listener.connections == []


async def test_a_stored_job_with_a_remote_ref_fails_its_items_without_fetching(
    services: Services, client: Client, listener: Listener
) -> None:
    """A job that got past the tool (stored before the guard existed, then resumed) still never fetches."""
    schema, ref, _ = hostile_schemas(listener.url)[0]
    sampling = SamplingOptions(max_tokens=8, temperature=0, json_schema=schema)
    job_id = services.jobs.submit([{"prompt": "one"}, {"prompt": "two"}], sampling, "test")

    async def report(progress) -> None:
        return None

    await services.jobs.wait(job_id, report, 0.1)
    results = (await client.call_tool("job_results", {"job_id": job_id})).structured_content
    assert [item["status"] for item in results["items"]] == ["error", "error"], results
    assert all(repr(ref) in item["error"] for item in results["items"])
    assert listener.connections == []


async def test_local_defs_reference_works_end_to_end(client: Client) -> None:
    schema = {
        "$defs": {"name": {"type": "string", "maxLength": 40}},
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/name"}, "country": {"$ref": "#/$defs/name"}},
        "required": ["city", "country"],
    }
    result = await client.call_tool(
        "generate", {"messages": CAPITAL, "temperature": 0, "max_tokens": 64, "json_schema": schema}
    )
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["parsed"] == json.loads(out["text"])
    assert isinstance(out["parsed"]["city"], str) and isinstance(out["parsed"]["country"], str)


async def test_oversize_and_overdeep_schemas_get_clear_errors(client: Client) -> None:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(4000)}}
    for schema, expected in ((wide, "the limit is 65,536"), (nested(40), "nested more than 32 levels deep")):
        for tool, args in (("generate", {"prompt": "hi"}), ("batch", {"prompts": ["hi"], "wait": True})):
            result = await client.call_tool(tool, {**args, "max_tokens": 4, "json_schema": schema})
            assert expected in error_text(result)


# --- the remote backend: nothing pointing elsewhere is forwarded to a remote vLLM ---


async def test_remote_backend_refuses_remote_refs_and_forwards_nothing(
    remote_app: MCPServer, remote_services: Services, listener: Listener
) -> None:
    async with Client(remote_app) as client:
        for schema, ref, location in hostile_schemas(listener.url):
            result = await client.call_tool(
                "generate", {"prompt": "hi", "temperature": 0, "max_tokens": 8, "json_schema": schema}
            )
            message = error_text(result)
            assert repr(ref) in message and f"at {location}" in message, message
            batch = await client.call_tool(
                "batch", {"prompts": ["hi"], "max_tokens": 8, "json_schema": schema, "wait": True}
            )
            assert repr(ref) in error_text(batch)
    # below the tools: the backend itself refuses before building the request for vLLM
    schema, ref, _ = hostile_schemas(listener.url)[0]
    with pytest.raises(InputError, match="would need a fetch"):
        await remote_services.engine.generate([1, 2, 3], SamplingOptions(max_tokens=4, json_schema=schema), "guard")
    assert listener.connections == []
