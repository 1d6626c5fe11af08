"""MCP tools, one module per family; each module lists its tool functions in TOOLS."""

from mcp.server.mcpserver.tools import Tool

from mcp_llm.tools import batch, flows, generate
from mcp_llm.tools.common import strict_tool


def all_tools() -> list[Tool]:
    return [strict_tool(fn) for fn in (*generate.TOOLS, *batch.TOOLS, *flows.TOOLS)]
