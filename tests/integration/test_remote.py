"""The remote backend's own promises against a real vLLM server (the session's `vllm_remote`): local-only tools
say so, and a remote server killed mid-batch and restarted costs no item and runs none twice. Its settings and
an unreachable URL are tests/unit/test_remote_settings.py."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from bench.vllm_server import VllmServer
from mcp_llm.core.services import Services

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("load_model", {"name": "anything"}),
        ("quantize", {"scheme": "W8A8"}),
        ("train_adapter", {"name": "a", "examples": [{"prompt": "a", "completion": "b"}] * 2}),
        ("import_adapter", {"name": "a", "path": "/tmp"}),
    ],
)
async def test_in_process_only_tools_say_what_to_do_instead(remote_app: MCPServer, tool: str, arguments: dict) -> None:
    async with Client(remote_app) as client:
        result = await client.call_tool(tool, arguments)
    text = result.content[0].text
    assert result.is_error and "needs the in-process engine" in text and "--backend openai" in text, text


TOKENS = 160  # 24 items of this length take tens of seconds: no machine finishes them before the kill


@pytest.mark.slow
async def test_remote_killed_mid_batch_then_restarted_loses_and_repeats_nothing(
    vllm_remote: VllmServer, remote_services: Services, remote_app: MCPServer
) -> None:
    """SIGKILL the remote vLLM (server and engine core) while a batch runs, start it again on the same port:
    the cut-off items are retried with backoff and the job completes with each item done exactly once."""
    store, runner = remote_services.store, remote_services.jobs
    prompts = [f"Count from {i} to {i + 40}:" for i in range(24)]
    async with Client(remote_app) as client:
        started = await client.call_tool(
            "batch", {"prompts": prompts, "max_tokens": TOKENS, "ignore_eos": True, "wait": False}
        )
        job_id = started.structured_content["job"]["job_id"]
        with anyio.fail_after(60):  # every item runs at once and they end together: kill while they decode
            while remote_services.engine.stats().running < 1:
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)
        await anyio.to_thread.run_sync(vllm_remote.kill)
        done_at_kill = runner.progress(job_id).done
        await anyio.to_thread.run_sync(vllm_remote.start)
        with anyio.fail_after(300):
            while store.job(job_id)["status"] != "completed":
                await anyio.sleep(0.5)
        final = (await client.call_tool("job_status", {"job_id": job_id})).structured_content
    assert done_at_kill < len(prompts), "the kill must land mid-batch"
    assert (final["completed"], final["failed"], final["pending"]) == (len(prompts), 0, 0)
    store.flush()
    rows = store.db.execute("select idx, status, completion_tokens from items where job_id = ?", [job_id]).fetchall()
    assert sorted(r[0] for r in rows) == list(range(len(prompts)))
    assert all(status == "done" and tokens == TOKENS for _, status, tokens in rows)
    logged = store.db.execute("select count(*) from requests where job_id = ? and status = 'ok'", [job_id]).fetchone()[
        0
    ]
    assert logged == len(prompts)  # one successful engine request per item: none ran twice to the end
