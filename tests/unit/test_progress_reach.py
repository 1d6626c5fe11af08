"""`wants_progress` tells a call with a progress callback from one without, on both protocol lines, so
`generate` streams from the engine only when someone hears the partial text."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer

from mcp_llm.server.tools.common import wants_progress

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_progress_reaches_only_callers_that_listen(mode: str) -> None:
    app = MCPServer("probe")

    @app.tool()
    async def probe(ctx: Context) -> bool:
        return wants_progress(ctx)

    async def heard(done: float, total: float | None, message: str | None) -> None:
        pass

    async with Client(app, mode=mode) as client:
        listening = await client.call_tool("probe", {}, progress_callback=heard)
        deaf = await client.call_tool("probe", {})
    assert listening.structured_content == {"result": True} and deaf.structured_content == {"result": False}
