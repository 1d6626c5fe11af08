"""Streamable HTTP serving: the `/mcp` endpoint (bearer auth, Host/Origin guard, body limit: see `auth`),
`GET /health` (open, for load balancers), `GET /metrics`, uvicorn logging to stderr."""

from __future__ import annotations

import copy
import signal
from types import FrameType

import uvicorn
from mcp.server.mcpserver import MCPServer
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_llm.core.services import Runtime
from mcp_llm.engine.base import EngineState
from mcp_llm.server import auth
from mcp_llm.settings import Settings


def register(mcp: MCPServer, runtime: Runtime) -> None:
    @mcp.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        """200 with the engine state when it serves, 503 otherwise."""
        state, detail = runtime.state, runtime.detail
        body: dict = {}
        if runtime.services is not None:
            engine = runtime.services.engine
            body = {
                "model": engine.model_name,
                "backend": engine.backend,
                "running_requests": 0 if engine.restarting else engine.num_unfinished_requests(),
                "restarts": engine.restarts,
            }
            if runtime.services.store.write_error:
                body["database_error"] = runtime.services.store.write_error
            if state is EngineState.READY and engine.state is not EngineState.READY:  # a remote vLLM gone away
                state, detail = engine.state, engine.detail
        body = {"status": state.value, **({"detail": detail} if detail else {}), **body}
        return JSONResponse(body, status_code=200 if state is EngineState.READY else 503)

    @mcp.custom_route("/metrics", methods=["GET"])
    async def metrics(request: Request) -> Response:
        """Prometheus scrape endpoint (same text as the metrics://prometheus resource); with auth on, it
        takes the same bearer tokens as /mcp."""
        user = request.scope.get("user")
        if user is not None and not user.is_authenticated:
            return Response("bearer token required\n", status_code=401, media_type="text/plain")
        if runtime.services is None:
            return Response(f"engine {runtime.state.value}\n", status_code=503, media_type="text/plain")
        svc = runtime.services
        return Response(svc.metrics.exposition(svc.engine.stats()), media_type=CONTENT_TYPE_LATEST)


def _stderr_logging() -> dict:
    """uvicorn's logging config with its access log moved from stdout to stderr."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def asgi_app(mcp: MCPServer, settings: Settings) -> Starlette:
    """The ASGI app: `/mcp` (Streamable HTTP, behind the auth and Host/Origin guards), `/health`, `/metrics`,
    `/dashboard`."""
    return mcp.streamable_http_app(
        host=settings.host,
        transport_security=auth.transport_security(settings),
        max_request_body_size=settings.max_request_body_bytes,
        stateless_http=settings.stateless_http,
        json_response=settings.json_response,
    )


async def serve(mcp: MCPServer, settings: Settings) -> None:
    """Serve the app until SIGINT/SIGTERM, then run the lifespan's shutdown."""
    config = uvicorn.Config(
        asgi_app(mcp, settings),
        host=settings.host,
        port=settings.port,
        log_config=_stderr_logging(),
        log_level=settings.log_level.lower(),
    )
    await GracefulServer(config).serve()


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises a SIGTERM after its graceful shutdown, so the process ends with status -15; a supervisor
    that asked us to stop gets a clean exit (0) once requests drained and jobs were persisted."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals.remove(sig)
