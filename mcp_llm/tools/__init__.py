"""MCP tools, one module per family; each module lists its tool functions in TOOLS."""

from mcp.server.mcpserver.tools import Tool


def all_tools() -> list[Tool]:
    """Every tool, with strict arguments. Imported here, not at package import, so modules below
    `mcp_llm.tools` (flows, resources) can use `mcp_llm.tools.common` without an import cycle."""
    from mcp_llm.tools import adapters, batch, bench, embed, flows, generate, models, tuning
    from mcp_llm.tools.common import strict_tool

    return [
        strict_tool(fn)
        for fn in (
            *generate.TOOLS,
            *batch.TOOLS,
            *flows.TOOLS,
            *models.TOOLS,
            *adapters.TOOLS,
            *embed.TOOLS,
            *bench.TOOLS,
            *tuning.TOOLS,
        )
    ]
