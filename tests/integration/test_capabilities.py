"""What the server declares, read from raw JSON-RPC (the SDK client does not check capabilities): at 2025-11-25
the `initialize` result names tasks (`tasks.list`, `tasks.cancel`, `tasks.requests.tools.call`), resource
subscriptions and logging, and the package version; at 2026-07-28 `server/discover` names the Tasks extension
and no core `tasks`. Raw POSTs to the Streamable HTTP app in process, over the session's shared engine."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mcp_llm.core.services import Services
from mcp_llm.server.app import create_app
from mcp_llm.server.tasks import TASKS_EXTENSION
from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
CLIENT = {"name": "raw", "version": "0"}


@pytest.fixture(scope="module")
async def http(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, shared=services)
    asgi = app.streamable_http_app(json_response=True)
    async with app.session_manager.run():
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=60) as client:
            yield client


async def rpc(http: httpx.AsyncClient, method: str, params: dict, headers: dict[str, str] | None = None) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    response = await http.post("/mcp", content=json.dumps(body), headers=HEADERS | (headers or {}))
    assert response.status_code == 200, response.text
    reply = response.json()
    assert "result" in reply, reply
    return reply["result"]


async def initialize(http: httpx.AsyncClient, version: str) -> dict[str, Any]:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT}
    return await rpc(http, "initialize", params)


async def test_initialize_declares_tasks_subscriptions_logging_and_version(http: httpx.AsyncClient) -> None:
    result = await initialize(http, "2025-11-25")
    assert result["protocolVersion"] == "2025-11-25"
    capabilities = result["capabilities"]
    assert capabilities["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    assert capabilities["resources"]["subscribe"] is True
    assert capabilities["logging"] == {}
    assert {"tools", "prompts", "resources"} <= set(capabilities)
    version = result["serverInfo"]["version"]
    assert version and version == importlib.metadata.version("mcp-llm")


async def test_older_revisions_get_no_tasks(http: httpx.AsyncClient) -> None:
    """Tasks entered the core spec at 2025-11-25: an older client is not told about them."""
    result = await initialize(http, "2025-06-18")
    assert result["protocolVersion"] == "2025-06-18"
    assert "tasks" not in result["capabilities"]
    assert result["capabilities"]["resources"]["subscribe"] is True


async def test_discover_declares_the_tasks_extension(http: httpx.AsyncClient) -> None:
    version = "2026-07-28"
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS_EXTENSION: {}}},
        "io.modelcontextprotocol/clientInfo": CLIENT,
    }
    headers = {"mcp-protocol-version": version, "mcp-method": "server/discover"}
    result = await rpc(http, "server/discover", {"_meta": meta}, headers)
    assert version in result["supportedVersions"]
    capabilities = result["capabilities"]
    assert TASKS_EXTENSION in capabilities["extensions"]
    assert "tasks" not in capabilities  # the 2025-11-25 core capability does not exist at 2026-07-28
    assert capabilities["resources"]["subscribe"] is True  # through subscriptions/listen
