"""A client's `json_schema` never makes the server fetch anything (issue 19, item 1).

A real TCP listener on loopback stands in for the address a hostile `$ref` points to: every tool call
(and the job runner, and the remote backend) must refuse the schema with a message naming the
reference, and the listener must see zero connections. Before the guard, `generate` opened one
(jsonschema's default `urlopen` retrieval, on the event loop). The guard on its own is
tests/unit/test_schema_guard.py.
"""

from __future__ import annotations

import json

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_llm.core.services import Services
from mcp_llm.errors import InputError
from mcp_llm.schemas import SamplingOptions
from tests.support.schemas import Listener, hostile_schemas, nested

pytestmark = pytest.mark.anyio

CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer as JSON."}]


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
