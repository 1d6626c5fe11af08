"""Plain HTTP routes beside `/mcp`: `GET /health`."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_llm.engine.base import EngineState
from mcp_llm.services import Runtime


def register(mcp: MCPServer, runtime: Runtime) -> None:
    @mcp.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        """200 with the engine state when it serves, 503 otherwise."""
        body: dict = {"status": runtime.state.value}
        if runtime.detail:
            body["detail"] = runtime.detail
        if runtime.services is not None:
            engine = runtime.services.engine
            body |= {"model": engine.model_name, "running_requests": engine.num_unfinished_requests()}
        return JSONResponse(body, status_code=200 if runtime.state is EngineState.READY else 503)
