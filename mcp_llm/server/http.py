"""Streamable HTTP serving: the `/mcp` endpoint (bearer auth, Host/Origin guard, body limit: see `auth`),
`GET /health` (open, for load balancers), `GET /metrics`, uvicorn logging to stderr."""

from __future__ import annotations

import copy
import os
import signal
import socket
from types import FrameType

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_llm.core.access import role_of_scopes
from mcp_llm.core.services import Runtime
from mcp_llm.engine.base import EngineState
from mcp_llm.server import auth
from mcp_llm.settings import Settings


def register(mcp: MCPServer, runtime: Runtime) -> None:
    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> JSONResponse:
        """200 when the engine serves, 503 otherwise. With authentication on, only the state, unless an admin's
        token asks (then the reason, model, load and database errors too, as without authentication)."""
        body = health_of(runtime)
        code = 200 if body["status"] == EngineState.READY.value else 503
        user = request.scope.get("user")
        if user is not None and not (user.is_authenticated and role_of_scopes(user.scopes) == "admin"):
            body = {"status": body["status"]}
        return JSONResponse(body, status_code=code)

    @mcp.custom_route("/metrics", methods=["GET"])
    async def metrics(request: Request) -> Response:
        """Prometheus scrape endpoint (same text as the metrics://prometheus resource); with auth on, it
        takes the same bearer tokens as /mcp."""
        user = request.scope.get("user")
        if user is not None and not user.is_authenticated:
            return Response("bearer token required\n", status_code=401, media_type="text/plain")
        if runtime.services is None:
            return Response(f"engine {runtime.state.value}\n", status_code=503, media_type="text/plain")
        return Response(runtime.services.prometheus_text(), media_type=CONTENT_TYPE_LATEST)


def health_of(runtime: Runtime) -> dict:
    """The engine state, why (while not serving), model, backend, load, restarts, a database write error."""
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
        if runtime.services.settings.api_server_count > 1:  # which front-end answered (--api-server-count)
            body["front_end_pid"] = os.getpid()
        if runtime.services.store.write_error:
            body["database_error"] = runtime.services.store.write_error
        if state is EngineState.READY and engine.state is not EngineState.READY:  # a remote vLLM gone away
            state, detail = engine.state, engine.detail
    return {"status": state.value, **({"detail": detail} if detail else {}), **body}


def _stderr_logging() -> dict:
    """uvicorn's logging config with its access log moved from stdout to stderr."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def asgi_app(mcp: MCPServer, settings: Settings) -> ASGIApp:
    """The ASGI app: `/mcp` (Streamable HTTP), `/health`, `/metrics`, `/dashboard`, all behind the Host/Origin
    guard (the SDK guards `/mcp`; `HostGuard` the others) and the bearer auth."""
    security = auth.transport_security(settings)
    app = mcp.streamable_http_app(
        host=settings.host,
        transport_security=security,
        max_request_body_size=settings.max_request_body_bytes,
        stateless_http=settings.stateless_http,
        json_response=settings.json_response,
    )
    return HostGuard(app, TransportSecurityMiddleware(security), GUARDED_ROUTES)


GUARDED_ROUTES = ("/health", "/metrics", "/dashboard")


class HostGuard:
    """The SDK's DNS-rebinding check (Host, and a browser's Origin) on our own routes too: a page on another site
    cannot read `/metrics` or `/dashboard` through a rebound DNS name."""

    def __init__(self, app: ASGIApp, guard: TransportSecurityMiddleware, paths: tuple[str, ...]) -> None:
        self.app, self.guard, self.paths = app, guard, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            refusal = await self.guard.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def serve(mcp: MCPServer, settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve the app until SIGINT/SIGTERM, then run the lifespan's shutdown; on `sock` when given (a socket the
    front-ends of `--api-server-count` share), else on the settings' host and port."""
    config = uvicorn.Config(
        asgi_app(mcp, settings),
        host=settings.host,
        port=settings.port,
        log_config=_stderr_logging(),
        log_level=settings.log_level.lower(),
    )
    await GracefulServer(config).serve(sockets=[sock] if sock is not None else None)


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises a SIGTERM after its graceful shutdown, so the process ends with status -15; a supervisor
    that asked us to stop gets a clean exit (0) once requests drained and jobs were persisted."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals.remove(sig)
