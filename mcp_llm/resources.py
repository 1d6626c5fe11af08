"""MCP resources: the engine's configuration (and, later, metrics and jobs)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_llm.services import Runtime


def register(mcp: MCPServer, runtime: Runtime) -> None:
    @mcp.resource(
        "model://config",
        name="model_config",
        title="Serving engine configuration",
        description="Model, dtype, context length, batch limits, device, KV cache, prefix caching, vLLM version.",
        mime_type="application/json",
    )
    def model_config() -> str:
        """The serving engine's effective configuration as JSON."""
        return runtime.require().engine.config().model_dump_json(indent=2)
