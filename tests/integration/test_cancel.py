"""A client that cancels a call frees the engine: its vLLM request is aborted, the running count returns to 0."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client

from mcp_llm.core.services import Services

pytestmark = pytest.mark.anyio
LONG = {"prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True}


async def wait_until(condition, timeout: float) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


@pytest.mark.parametrize("era", ["legacy", "auto"])  # JSON-RPC notifications/cancelled; structural cancel
async def test_cancelling_a_generate_call_aborts_its_engine_request(app, services: Services, era: str) -> None:
    engine = services.engine
    await wait_until(lambda: engine.num_unfinished_requests() == 0, 30)
    async with Client(app, mode=era) as client, anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def call() -> None:
            with scope:
                await client.call_tool("generate", LONG)

        tg.start_soon(call)
        await wait_until(lambda: engine.num_unfinished_requests() == 1, 30)
        scope.cancel()
    await wait_until(lambda: engine.num_unfinished_requests() == 0 and engine.stats().running == 0, 10)
    services.store.flush()
    assert services.store.requests(limit=1)[0]["status"] == "cancelled"
