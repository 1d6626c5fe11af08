"""The server as users run it: `python server.py` over stdio and Streamable HTTP, as real subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import anyio
import httpx
import pytest
from mcp import Client

from tests.conftest import REPO, SERVER_CMD, server_env
from tests.support.net import free_port
from tests.support.servers import START_TIMEOUT_S, assert_all_gone, descendants, start_fails, wait_healthy
from tests.support.tasks import KEEP_ALIVE

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CAPITAL = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "temperature": 0,
    "max_tokens": 24,
}


def rpc(proc: subprocess.Popen, message: dict) -> None:
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def read_response(proc: subprocess.Popen, request_id: int, lines: list[str]) -> dict:
    """Read stdout lines (keeping each) until the response to `request_id` arrives."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"server closed stdout early; exit code {proc.poll()}"
        lines.append(line)
        message = json.loads(line)
        if message.get("id") == request_id:
            return message
    raise AssertionError(f"no response to request {request_id}")


def test_stdio_start_progress_then_only_jsonrpc_on_stdout_and_exit_leaves_no_orphans(tmp_path) -> None:
    """Raw stdio as a desktop client speaks it: the handshake, a `batch` sent at once hears the engine start
    (keep-alive progress) and its items, stdout carries nothing but JSON-RPC, and leaving ends every process."""
    proc = subprocess.Popen(
        SERVER_CMD,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=server_env(tmp_path),
        cwd=REPO,
    )
    lines: list[str] = []
    try:
        rpc(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            },
        )
        init = read_response(proc, 1, lines)
        assert init["result"]["serverInfo"]["name"] == "mcp-llm"
        rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        # a `batch` right after the handshake: keep-alive progress names the start's phases until the engine
        # serves, then the job's own progress, then the answers
        batch = {"prompts": ["The capital of France is", "One, two, three,"], "max_tokens": 8, "temperature": 0}
        params = {"name": "batch", "arguments": batch, "_meta": {"progressToken": "start"}}
        rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})
        answer = read_response(proc, 2, lines)
        results = answer["result"]["structuredContent"]["results"]
        assert [r["status"] for r in results] == ["done", "done"] and "Paris" in results[0]["text"]
        messages = [json.loads(line) for line in lines]
        progress = [m["params"]["message"] for m in messages if m.get("method") == "notifications/progress"]
        starting = [m for m in progress if m.startswith("engine starting")]
        assert len(starting) >= 2 and all(KEEP_ALIVE.match(m) for m in starting), progress[:5]
        phases = {m.split(", ")[0].removeprefix("engine starting: ") for m in starting}
        assert phases & {"importing vLLM", "starting the engine", "loading weights", "compiling/profiling"}, phases
        assert any("items" in m for m in progress[len(starting) :]), progress  # then the job's own progress
        children = descendants(proc.pid)
        assert children, "the engine core runs in a child process"
        proc.stdin.close()  # the client leaves: the server drains, stops the engine and exits
        proc.wait(timeout=120)
        lines += proc.stdout.read().splitlines(keepends=True)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    for line in lines:
        message = json.loads(line)  # any non-JSON line (a stray log, a print) fails here
        assert message.get("jsonrpc") == "2.0", line
    assert_all_gone(children)


async def first_answer(url: str, proc: subprocess.Popen) -> httpx.Response:
    """The first HTTP answer the server gives (it listens before its engine is up)."""
    with anyio.fail_after(START_TIMEOUT_S):
        while True:
            assert proc.poll() is None, "server exited during start"
            try:
                return httpx.get(url, timeout=2)
            except httpx.TransportError:
                await anyio.sleep(0.2)


async def test_streamable_http_serves_concurrent_clients_and_stops_cleanly(tmp_path) -> None:
    port = free_port()
    errlog = (tmp_path / "stderr.log").open("w+")
    proc = subprocess.Popen(
        [*SERVER_CMD, "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=errlog,
        env=server_env(tmp_path),
        cwd=REPO,
    )
    try:
        first = await first_answer(f"http://127.0.0.1:{port}/health", proc)
        assert first.status_code == 503 and first.json()["status"] == "starting", "clients connect while it starts"
        health = await wait_healthy(f"http://127.0.0.1:{port}/health", proc, tmp_path / "stderr.log")
        assert health["status"] == "ready" and health["model"] == "SmolLM2-135M-Instruct"
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scrape.status_code == 200 and "mcp_llm_request_ttft_seconds_count" in scrape.text
        texts: list[str] = []

        async def one_client() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=120) as client:
                result = await client.call_tool("generate", CAPITAL)
                texts.append(result.structured_content["text"])

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one_client)
        assert len(texts) == 3 and all("Paris" in t for t in texts)
        children = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        assert proc.returncode == 0  # a graceful stop (uvicorn's re-raised SIGTERM is swallowed: http.GracefulServer)
        assert "engine stopped" in (tmp_path / "stderr.log").read_text()
        assert_all_gone(children)
        assert proc.stdout.read() == b"", "HTTP mode prints nothing to stdout either"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_invalid_setting_fails_at_start_naming_it(tmp_path) -> None:
    assert "max_num_seqs" in start_fails(tmp_path, "--max-num-seqs", "0")
    assert "transport" in start_fails(tmp_path, MCP_LLM_TRANSPORT="carrier-pigeon")
