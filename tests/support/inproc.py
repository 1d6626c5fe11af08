"""Our app over real Streamable HTTP inside the test process: uvicorn on a loopback port in the session's event
loop, serving `create_app(..., shared=services)`, so HTTP tests with tokens reuse the session's engine instead of
starting a server subprocess (30-60 s of engine start on 2 cores)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_llm.core.access import Principal
from mcp_llm.core.services import Services
from mcp_llm.server.app import create_app
from mcp_llm.server.http import asgi_app
from tests.support.net import free_port


@asynccontextmanager
async def http_app(services: Services, tokens: dict[str, Principal], **overrides: object) -> AsyncIterator[str]:
    """Serve the shared services over HTTP with bearer `tokens`; yields the `/mcp` URL."""
    port = free_port()
    update = {"transport": "http", "host": "127.0.0.1", "port": port, **overrides}
    settings = services.settings.model_copy(update=update)
    app = asgi_app(create_app(settings, shared=services, tokens=tokens), settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest keeps its handlers
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def client_as(url: str, token: str, mode: str | None = None) -> AsyncIterator[Client]:
    """A real MCP client over Streamable HTTP with a bearer token (`mode="legacy"`: 2025-11-25)."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    transport = streamable_http_client(url, http_client=http)
    options = {"mode": mode} if mode else {}
    async with http, Client(transport, read_timeout_seconds=120, **options) as client:
        yield client
