"""HTTP security against a real server subprocess: bearer tokens (none, wrong, right), the Host/Origin
guard, the body size limit, /health open and /metrics guarded, busy errors past the in-flight bounds
(per client and in total), and the refusal to bind beyond loopback without tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
import sqlite_utils
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import REPO, SECURE_ADMIN, SECURE_TOKENS
from tests.support.net import free_port
from tests.support.servers import HttpServer, start_fails

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOKENS = SECURE_TOKENS
CAPITAL = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0}
LONG = {"prompt": "Count slowly:", "max_tokens": 160, "ignore_eos": True, "temperature": 0}  # still running at +1.5 s
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def server(secure_http: HttpServer) -> HttpServer:
    """The session's token-guarded server (conftest)."""
    return secure_http


@asynccontextmanager
async def client_as(server: HttpServer, token: str) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(server.url, http_client=http), read_timeout_seconds=120) as c:
        yield c


def post(server: HttpServer, body: bytes | str, **headers: str) -> httpx.Response:
    return httpx.post(server.url, content=body, headers=HEADERS | headers, timeout=30)


async def test_requests_without_a_valid_token_are_refused(server: HttpServer) -> None:
    body = json.dumps(INITIALIZE)
    assert post(server, body).status_code == 401
    assert post(server, body, Authorization="Bearer not-a-token").status_code == 401
    assert post(server, body, Authorization=f"Bearer {TOKENS['alice']}x").status_code == 401
    assert post(server, body, Authorization=f"Bearer {TOKENS['alice']}").status_code == 200


async def test_a_right_token_serves_tools_and_names_the_client(server: HttpServer) -> None:
    async with client_as(server, TOKENS["bob"]) as client:
        result = await client.call_tool("generate", CAPITAL)
        assert not result.is_error and "Paris" in result.structured_content["text"]
        metrics = json.loads((await client.read_resource("metrics://engine")).contents[0].text)
    assert metrics, "resources answer behind auth too"
    await anyio.sleep(0.5)  # the request log is flushed every 0.2 s
    log = sqlite_utils.Database(server.log.parent / "mcp-llm.db")["requests"]
    assert log.count_where("client = 'bob' and kind = 'generate' and status = 'ok'") == 1, "the token names the client"
    assert log.count_where("prompt is not null or completion is not null") == 0, "no text unless log_request_text"
    server_log = server.log.read_text()
    assert not [t for t in TOKENS.values() if t in server_log], "tokens never reach the log"


async def test_health_is_open_and_metrics_need_a_token(server: HttpServer) -> None:
    assert httpx.get(f"{server.base}/health", timeout=10).json() == {"status": "ready"}  # the state, no more
    user = {"Authorization": f"Bearer {TOKENS['alice']}"}
    assert httpx.get(f"{server.base}/health", headers=user, timeout=10).json() == {"status": "ready"}
    admin = {"Authorization": f"Bearer {SECURE_ADMIN[1]}"}
    assert "model" in httpx.get(f"{server.base}/health", headers=admin, timeout=10).json()
    assert httpx.get(f"{server.base}/metrics", timeout=10).status_code == 401
    scrape = httpx.get(f"{server.base}/metrics", headers={"Authorization": f"Bearer {TOKENS['alice']}"}, timeout=10)
    assert scrape.status_code == 200 and "mcp_llm_" in scrape.text


async def test_foreign_host_and_origin_are_rejected(server: HttpServer) -> None:
    auth = {"Authorization": f"Bearer {TOKENS['alice']}"}
    body = json.dumps(INITIALIZE)
    assert post(server, body, Host="evil.example", **auth).status_code == 421
    assert post(server, body, Origin="http://evil.example", **auth).status_code == 403
    assert post(server, body, Origin=f"http://localhost:{server.port}", **auth).status_code == 200
    for route in ("/health", "/metrics", "/dashboard"):  # our own routes are guarded too
        url = f"{server.base}{route}"
        assert httpx.get(url, headers={"Host": "evil.example", **auth}, timeout=10).status_code == 421, route
        assert httpx.get(url, headers={"Origin": "http://evil.example", **auth}, timeout=10).status_code == 403, route


async def test_oversized_bodies_are_refused(server: HttpServer) -> None:
    big = dict(INITIALIZE, params=dict(INITIALIZE["params"], padding="x" * 100_000))
    answer = post(server, json.dumps(big), Authorization=f"Bearer {TOKENS['alice']}")
    assert answer.status_code == 413


async def busy_or_ok(server: HttpServer, token: str, delay: float, out: dict[str, str]) -> None:
    await anyio.sleep(delay)
    async with client_as(server, token) as client:
        result = await client.call_tool("generate", LONG)
    out[f"{token}@{delay}"] = result.content[0].text if result.is_error else "ok"


async def test_in_flight_bounds_answer_busy_per_client_and_in_total(server: HttpServer) -> None:
    per_client: dict[str, str] = {}
    async with anyio.create_task_group() as tg:  # alice twice at once: her second call is over her bound of 1
        tg.start_soon(busy_or_ok, server, TOKENS["alice"], 0.0, per_client)
        tg.start_soon(busy_or_ok, server, TOKENS["alice"], 1.5, per_client)
    assert per_client[f"{TOKENS['alice']}@0.0"] == "ok"
    assert "Busy" in per_client[f"{TOKENS['alice']}@1.5"] and "'alice'" in per_client[f"{TOKENS['alice']}@1.5"]

    total: dict[str, str] = {}
    async with anyio.create_task_group() as tg:  # three clients at once: the third is over the total of 2
        tg.start_soon(busy_or_ok, server, TOKENS["alice"], 0.0, total)
        tg.start_soon(busy_or_ok, server, TOKENS["bob"], 0.0, total)
        tg.start_soon(busy_or_ok, server, TOKENS["carol"], 1.5, total)
    assert total[f"{TOKENS['alice']}@0.0"] == total[f"{TOKENS['bob']}@0.0"] == "ok"
    assert "Busy" in total[f"{TOKENS['carol']}@1.5"] and "limit 2" in total[f"{TOKENS['carol']}@1.5"]
    async with client_as(server, TOKENS["carol"]) as client:  # slots are given back: carol is served now
        assert not (await client.call_tool("generate", CAPITAL)).is_error


def test_binding_beyond_loopback_without_tokens_refuses_to_start(tmp_path) -> None:
    stderr = start_fails(tmp_path, "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port()))
    assert "without authentication" in stderr and "--auth-tokens" in stderr


def test_a_bad_token_file_stops_the_start_naming_it(tmp_path) -> None:
    bad = tmp_path / "tokens.txt"
    bad.write_text("# clients\nalice tok-1\nbob has three words\n")
    stderr = start_fails(tmp_path, "--transport", "http", "--port", str(free_port()), "--auth-token-file", str(bad))
    assert "tokens.txt" in stderr and "entry 2" in stderr


CLIENT_THAT_DIES = """
import anyio, sys
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

async def main():
    http = create_mcp_http_client(headers={"Authorization": "Bearer " + sys.argv[2]})
    async with http, Client(streamable_http_client(sys.argv[1], http_client=http)) as client:
        await client.call_tool("generate", {"prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True})

anyio.run(main)
"""


def running_requests(server: HttpServer) -> int:
    admin = {"Authorization": f"Bearer {SECURE_ADMIN[1]}"}
    return httpx.get(f"{server.base}/health", headers=admin, timeout=10).json()["running_requests"]


async def test_a_client_that_disconnects_mid_generation_frees_its_engine_slot(server: HttpServer) -> None:
    client = subprocess.Popen([sys.executable, "-c", CLIENT_THAT_DIES, server.url, TOKENS["carol"]], cwd=REPO)
    try:
        with anyio.fail_after(60):
            while running_requests(server) == 0:
                await anyio.sleep(0.1)
        client.kill()  # no cancel notification: the connection just drops
        client.wait()
        with anyio.fail_after(30):  # 1,500 tokens would take minutes here: only an abort frees it this soon
            while running_requests(server) != 0:
                await anyio.sleep(0.1)
    finally:
        if client.poll() is None:
            client.kill()
