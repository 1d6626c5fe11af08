"""The horizontal HTTP tier: two server processes in remote mode behind no balancer at all (a client talks
to either), stateless HTTP, one shared data dir: a job submitted through one is seen and cancelled through
the other, and when its server dies the other takes it over and finishes it: each item's result stored exactly
once, each item executed at least once (the requests A had in flight ran again on B)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from bench.vllm_server import VllmServer
from tests.support.jobs import assert_each_result_once_each_item_run_at_least_once, stored_done
from tests.support.servers import http_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
ITEMS = 12
TOKENS = 400  # long enough that no machine finishes the job between the checks below (200 did once, loaded)


def replica_flags(url: str) -> list[str]:
    return ["--backend", "openai", "--base-url", url, "--stateless-http", "--job-lease-s", "3"]


async def remote_running(url: str) -> float:
    """Requests the remote vLLM is running now, from its /metrics."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "vllm:num_requests_running"
    )


async def status(url: str, job_id: str) -> dict:
    async with Client(url) as client:
        return (await client.call_tool("job_status", {"job_id": job_id})).structured_content


async def test_two_replicas_share_jobs_and_take_over_a_dead_ones(tmp_path: Path, vllm_remote: VllmServer) -> None:
    shared = tmp_path / "shared"
    env = {"MCP_LLM_DATA_DIR": str(shared), "MCP_LLM_REQUEST_STATE_KEYS": '["' + "0123456789abcdef" * 4 + '"]'}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    flags = replica_flags(vllm_remote.url)
    async with http_server(tmp_path / "a", *flags, **env) as a, http_server(tmp_path / "b", *flags, **env) as b:
        arguments = {"prompts": [f"Count to {i + 20}:" for i in range(ITEMS)], "max_tokens": TOKENS, "ignore_eos": True}
        async with Client(a.url) as client:
            started = await client.call_tool("batch", arguments | {"wait": False})
            job_id = started.structured_content["job"]["job_id"]
            doomed = await client.call_tool("batch", {**arguments, "max_tokens": 4000, "wait": False})
            doomed_id = doomed.structured_content["job"]["job_id"]
        async with Client(b.url) as client:  # the other replica sees A's job and can cancel it
            assert (await client.call_tool("job_status", {"job_id": job_id})).structured_content["total"] == ITEMS
            await client.call_tool("cancel_job", {"job_id": doomed_id})
        with anyio.fail_after(60):  # the items run at once and end together: kill A while vLLM decodes them
            while await remote_running(vllm_remote.url) < ITEMS:
                await anyio.sleep(0.1)
        durable = stored_done(shared / "mcp-llm.db", job_id)
        a.proc.kill()  # replica A dies mid-job; its lease runs out and B takes the job over
        a.proc.wait(timeout=30)
        assert (await status(b.url, job_id))["completed"] < ITEMS
        with anyio.fail_after(300):
            while (final := await status(b.url, job_id))["status"] != "completed":
                await anyio.sleep(0.5)
        assert (final["completed"], final["failed"], final["pending"]) == (ITEMS, 0, 0)
        assert (await status(b.url, doomed_id))["status"] == "cancelled"
        async with Client(b.url) as client:
            page = (await client.call_tool("job_results", {"job_id": job_id, "limit": 100})).structured_content
    assert_each_result_once_each_item_run_at_least_once(shared / "mcp-llm.db", job_id, ITEMS, page, durable)
    assert all(item["usage"]["completion_tokens"] == TOKENS for item in page["items"])
    assert "resumed 1 unfinished jobs" in (tmp_path / "b" / "server.log").read_text()
