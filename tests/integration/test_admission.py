"""One admission path: every interactive engine call (generate, embed, a flow's own step) takes an in-flight slot
through the Recorder, or fails at once with a busy error; a job's items and a benchmark's requests are bounded by
their job and their concurrency levels instead. Counted on the real engine, with a client holding every slot it
may hold."""

from __future__ import annotations

import contextlib

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import Implementation

from mcp_llm.core.inference import Recorder
from mcp_llm.core.limits import InflightLimiter
from mcp_llm.core.services import Services
from mcp_llm.engine.base import routing_key
from mcp_llm.errors import Busy
from mcp_llm.schemas import SamplingOptions

pytestmark = pytest.mark.anyio
GREEDY = SamplingOptions(max_tokens=2, temperature=0)


async def test_interactive_calls_take_a_slot_job_items_and_benchmarks_do_not(services: Services) -> None:
    recorder = Recorder(services.engine, services.metrics, services.store, limiter=InflightLimiter(8, 1))
    ids = services.engine.tokenize_text("Hello")
    with recorder.limiter.slot("alice"):  # alice's one call is in flight
        for kind in ("generate", "flow", "embed"):
            with pytest.raises(Busy, match="client 'alice' already has 1"):
                await recorder.complete(ids, GREEDY, client="alice", kind=kind)
        served = [
            await recorder.complete(ids, GREEDY, client="bob", kind="generate"),
            await recorder.complete(ids, GREEDY, client="alice", kind="batch", job_id="job-1"),
            await recorder.complete(ids, GREEDY, client="alice", kind="benchmark"),
        ]
        assert routing_key.get() == "alice", "the last call's routing key: its client (a job's id for its items)"
    assert [c.usage.completion_tokens for c in served] == [2, 2, 2]
    assert recorder.limiter.inflight == 0, "every slot was given back, the refused ones too"
    await recorder.complete(ids, GREEDY, client="alice", kind="generate")  # her slot is free again


async def test_the_tools_share_the_bounds(app: MCPServer, services: Services) -> None:
    """`generate` and `embed` over MCP: with the client's slots all taken, both answer busy, naming the limit."""
    name = "admission-test"
    per_client = services.settings.max_inflight_per_client
    async with Client(app, client_info=Implementation(name=name, version="0")) as client:
        with contextlib.ExitStack() as held:
            for _ in range(per_client):
                held.enter_context(services.limiter.slot(name))
            for tool, args in (("generate", {"prompt": "Hi", "max_tokens": 2}), ("embed", {"texts": ["hi"]})):
                result = await client.call_tool(tool, args)
                assert result.is_error and f"already has {per_client} requests in flight" in result.content[0].text
        assert not (await client.call_tool("embed", {"texts": ["hi"]})).is_error
        assert not (await client.call_tool("generate", {"prompt": "Hi", "max_tokens": 2})).is_error
