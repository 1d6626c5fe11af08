"""A batch job survives its server being killed (SIGKILL) or stopped (SIGTERM) and completes after a restart,
every item once."""

from __future__ import annotations

import signal
import subprocess

import anyio
import mcp_types as types
import pytest
from mcp import Client

from mcp_llm.bench import free_port
from tests.conftest import REPO, SERVER_CMD, server_env
from tests.servers import assert_all_gone, descendants, wait_healthy
from tests.test_tasks import poll, start_task

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ITEMS = 16
WAVE = 4  # --max-num-seqs: items run in waves, so the kill lands between them
TOKENS = 96


def start_http_server(data_dir, port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [*SERVER_CMD, "--transport", "http", "--port", str(port), "--max-num-seqs", str(WAVE)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=server_env(data_dir),
        cwd=REPO,
    )


async def status_of(client: Client, job_id: str) -> dict:
    return (await client.call_tool("job_status", {"job_id": job_id})).structured_content


# a `batch` with wait=false or a 2025-11-25 task; the server killed (SIGKILL) or stopped by its supervisor (SIGTERM)
@pytest.mark.parametrize(("via", "stop"), [("tool", "kill"), ("task", "kill"), ("tool", "term")])
async def test_job_survives_its_server_stopping_and_completes_after_restart(tmp_path, via: str, stop: str) -> None:
    log = (tmp_path / "server.log").open("w")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    first = start_http_server(tmp_path, port, log)
    second = None
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/health", first, tmp_path / "server.log")
        async with Client(url, read_timeout_seconds=60, mode="legacy") as client:
            arguments = {
                "prompts": [f"Chapter {i}." for i in range(ITEMS)],
                "max_tokens": TOKENS,
                "ignore_eos": True,
                "temperature": 0,
            }
            if via == "task":
                task_id = (await start_task(client, "batch", arguments)).task_id
                with anyio.fail_after(30):
                    while not (jobs := (await client.call_tool("list_jobs", {})).structured_content["result"]):
                        await anyio.sleep(0.1)
                job_id = jobs[0]["job_id"]
            else:
                started = await client.call_tool("batch", arguments | {"wait": False})
                job_id = started.structured_content["job"]["job_id"]
            with anyio.fail_after(300):  # wait until some, not all, items are done
                while (done := await status_of(client, job_id))["completed"] < WAVE:
                    await anyio.sleep(0.1)
        assert done["completed"] < ITEMS, "the kill must land mid-job"
        engine_processes = descendants(first.pid)
        if stop == "kill":
            first.kill()
            first.wait(timeout=30)
            assert engine_processes and any(p.is_running() for p in engine_processes), "SIGKILL orphans the engine"
        else:  # stops admitting, drains (drain_timeout_s, 10 s), persists, stops its engine, exits 0
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=60) == 0
            assert_all_gone(engine_processes, timeout=5)

        second = start_http_server(tmp_path, port, log)
        await wait_healthy(f"http://127.0.0.1:{port}/health", second, tmp_path / "server.log")
        assert_all_gone(engine_processes, timeout=5)  # the restart ended the dead server's engine
        async with Client(url, read_timeout_seconds=60, mode="legacy") as client:
            if via == "task":  # the task answers from its job, which resumed
                assert (await poll(client, task_id, timeout=600))[-1].status == "completed"
                request = types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id))
                from_task = await client.session.send_request(request, types.CallToolResult)
                assert [r["index"] for r in from_task.structured_content["results"]] == list(range(ITEMS))
            with anyio.fail_after(600):
                while (status := await status_of(client, job_id))["status"] != "completed":
                    await anyio.sleep(0.5)
            assert status["completed"] == ITEMS and status["failed"] == 0 and status["pending"] == 0
            page = (await client.call_tool("job_results", {"job_id": job_id, "limit": 100})).structured_content
        assert [item["index"] for item in page["items"]] == list(range(ITEMS))  # every item, exactly once
        assert all(item["status"] == "done" and item["usage"]["completion_tokens"] == TOKENS for item in page["items"])
        assert "resumed 1 unfinished jobs" in (tmp_path / "server.log").read_text()

    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
