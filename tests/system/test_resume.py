"""A batch job survives its server being killed (SIGKILL) or stopped (SIGTERM) and completes after a restart.

The guarantee, counted rather than read back by index: every item's result is stored exactly once (one result
per item), and every item is executed at least once. An item cut off by the stop may run again after the
restart; an item whose result was stored before the stop never runs again."""

from __future__ import annotations

import signal
import subprocess

import anyio
import mcp_types as types
import pytest
from mcp import Client

from tests.conftest import REPO, SERVER_CMD, server_env
from tests.support.jobs import assert_each_result_once_each_item_run_at_least_once, query, stored_done
from tests.support.net import free_port
from tests.support.servers import assert_all_gone, descendants, wait_healthy
from tests.support.tasks import poll, start_task

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ITEMS = 12
WAVE = 4  # --max-num-seqs: items run in waves, so the kill lands between them
TOKENS = 64


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


def arguments(items: int) -> dict:
    prompts = [f"Chapter {i}." for i in range(items)]
    return {"prompts": prompts, "max_tokens": TOKENS, "ignore_eos": True, "temperature": 0}


# SIGKILL: a `batch` with wait=false and a 2025-11-25 task's job, killed together; SIGTERM (a supervisor's stop):
# the batch alone. Three waves of items, so even a SIGTERM's drain of the wave in flight leaves work to resume.
@pytest.mark.parametrize("stop", ["kill", "term"])
async def test_jobs_survive_their_server_stopping_and_complete_after_restart(tmp_path, stop: str) -> None:
    log = (tmp_path / "server.log").open("w")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    first = start_http_server(tmp_path, port, log)
    second = None
    sizes: dict[str, int] = {}  # job id -> items
    task_id = None
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/health", first, tmp_path / "server.log")
        async with Client(url, read_timeout_seconds=60, mode="legacy") as client:
            started = await client.call_tool("batch", arguments(ITEMS) | {"wait": False})
            sizes[started.structured_content["job"]["job_id"]] = ITEMS
            if stop == "kill":
                task_id = (await start_task(client, "batch", arguments(WAVE))).task_id
                with anyio.fail_after(30):
                    while len(jobs := (await client.call_tool("list_jobs", {})).structured_content["result"]) < 2:
                        await anyio.sleep(0.1)
                sizes |= {j["job_id"]: WAVE for j in jobs if j["job_id"] not in sizes}
            main = next(iter(sizes))
            with anyio.fail_after(300):  # wait until some, not all, items are done
                while (done := await status_of(client, main))["completed"] < WAVE:
                    await anyio.sleep(0.1)
        assert done["completed"] < ITEMS, "the stop must land mid-job"
        durable = {j: stored_done(tmp_path / "mcp-llm.db", j) for j in sizes}  # results the stop cannot take back
        engine_processes = descendants(first.pid)
        if stop == "kill":
            first.kill()
            first.wait(timeout=30)
            assert engine_processes and any(p.is_running() for p in engine_processes), "SIGKILL orphans the engine"
        else:  # stops admitting, drains (drain_timeout_s, 10 s), persists, stops its engine, exits 0
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=60) == 0
            assert_all_gone(engine_processes, timeout=5)
        open_jobs = "select count(*) from jobs where status in ('queued', 'running')"
        [(unfinished,)] = query(tmp_path / "mcp-llm.db", open_jobs)
        assert unfinished >= 1

        second = start_http_server(tmp_path, port, log)
        await wait_healthy(f"http://127.0.0.1:{port}/health", second, tmp_path / "server.log")
        assert_all_gone(engine_processes, timeout=5)  # the restart ended the dead server's engine
        async with Client(url, read_timeout_seconds=60, mode="legacy") as client:
            if task_id is not None:  # the task answers from its job, which resumed
                assert (await poll(client, task_id, timeout=600))[-1].status == "completed"
                request = types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id))
                from_task = await client.session.send_request(request, types.CallToolResult)
                assert [r["index"] for r in from_task.structured_content["results"]] == list(range(WAVE))
            pages = {}
            for job_id, items in sizes.items():
                with anyio.fail_after(600):
                    while (status := await status_of(client, job_id))["status"] != "completed":
                        await anyio.sleep(0.5)
                assert status["completed"] == items and status["failed"] == 0 and status["pending"] == 0
                page = await client.call_tool("job_results", {"job_id": job_id, "limit": 100})
                pages[job_id] = page.structured_content
        for job_id, items in sizes.items():
            db = tmp_path / "mcp-llm.db"
            assert_each_result_once_each_item_run_at_least_once(db, job_id, items, pages[job_id], durable[job_id])
            usage = [item["usage"]["completion_tokens"] for item in pages[job_id]["items"]]
            assert all(item["status"] == "done" for item in pages[job_id]["items"]) and set(usage) == {TOKENS}
        assert f"resumed {unfinished} unfinished jobs" in (tmp_path / "server.log").read_text()

    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
