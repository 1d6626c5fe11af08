"""Faults injected into a running server: the vLLM engine-core process SIGKILLed mid-batch. The server notices
(`/health` says it is restarting), starts the engine again, and the job finishes with every item's result stored
exactly once; the items the kill cut off ran again (at-least-once execution, counted in the request log)."""

from __future__ import annotations

import os
import signal

import anyio
import httpx
import pytest
from mcp import Client

from tests.support.jobs import assert_each_result_once_each_item_run_at_least_once, stored_done
from tests.support.servers import HttpServer, descendants, http_server, start_fails

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
ITEMS = 12
TOKENS = 64


def engine_core(server: HttpServer) -> int:
    """The pid of the server's vLLM engine-core process."""
    cores = [p.pid for p in descendants(server.proc.pid) if "EngineCore" in " ".join(p.cmdline()) + p.name()]
    assert len(cores) == 1, [(p.pid, p.name()) for p in descendants(server.proc.pid)]
    return cores[0]


async def health(server: HttpServer) -> dict:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{server.base}/health", timeout=10)).json()


async def test_engine_core_killed_mid_batch_is_restarted_and_the_job_completes(tmp_path) -> None:
    async with http_server(tmp_path, "--max-num-seqs", "4") as server:
        arguments = {"prompts": [f"Story {i}:" for i in range(ITEMS)], "max_tokens": TOKENS, "ignore_eos": True}
        async with Client(server.url, read_timeout_seconds=120) as client:
            job_id = (await client.call_tool("batch", arguments | {"wait": False})).structured_content["job"]["job_id"]
            with anyio.fail_after(120):
                while (await client.call_tool("job_status", {"job_id": job_id})).structured_content["completed"] < 2:
                    await anyio.sleep(0.2)
            durable = stored_done(tmp_path / "mcp-llm.db", job_id)
            os.kill(engine_core(server), signal.SIGKILL)
            with anyio.fail_after(60):  # the watchdog looks every second
                while (state := await health(server))["status"] != "starting":
                    await anyio.sleep(0.1)
            assert "restarting" in state["detail"], state
            with anyio.fail_after(300):
                while (state := await health(server))["status"] != "ready":
                    await anyio.sleep(0.5)
            assert state["restarts"] == 1, state
            with anyio.fail_after(300):
                while (status := (await client.call_tool("job_status", {"job_id": job_id})).structured_content)[
                    "status"
                ] != "completed":
                    await anyio.sleep(0.5)
            assert (status["completed"], status["failed"], status["pending"]) == (ITEMS, 0, 0)
            page = (await client.call_tool("job_results", {"job_id": job_id, "limit": 100})).structured_content
            runs = assert_each_result_once_each_item_run_at_least_once(
                tmp_path / "mcp-llm.db", job_id, ITEMS, page, durable
            )
            # the server lived on: the requests the dead engine cut off ended as errors, and those items ran again
            assert sum(len(r) for r in runs.values()) > ITEMS and any("error" in r for r in runs.values()), runs
            assert all(item["usage"]["completion_tokens"] == TOKENS for item in page["items"])
            answer = await client.call_tool("generate", {"prompt": "The capital of France is", "max_tokens": 4})
            assert not answer.is_error and answer.structured_content["text"]
    log = (tmp_path / "server.log").read_text()
    assert "the engine process died; restarting it (attempt 1/5)" in log and "engine restarted" in log


def test_a_damaged_database_stops_the_start_named_and_untouched(tmp_path) -> None:
    damaged = tmp_path / "mcp-llm.db"
    garbage = b"SQLite format 3\x00" + bytes(range(256)) * 64  # a header, then nothing a database holds
    damaged.write_bytes(garbage)
    stderr = start_fails(tmp_path)
    assert str(damaged) in stderr and "left as it is" in stderr, stderr[-1000:]
    assert damaged.read_bytes() == garbage
