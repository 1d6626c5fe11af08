"""`--api-server-count 2`: two front-end processes over one engine core, on one port. Calls spread over both and
answer as one engine would; a job submitted through one is seen and finished through any; engine-changing tools
are refused; `/metrics` answers for every front-end; SIGTERM leaves no process behind; when the engine core dies
the server stops (a supervisor restarts it) and leaves nothing behind; settings that cannot run several front-ends
stop the start."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import assert_all_gone, descendants, http_server, start_fails

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
TTFT_COUNT = "mcp_llm_request_ttft_seconds_count"


async def front_end_pids(base: str, tries: int = 40) -> set[int]:
    """The front-ends that answered /health, each try on a new connection."""
    pids = set()
    for _ in range(tries):
        async with httpx.AsyncClient() as http:
            pids.add((await http.get(f"{base}/health")).json()["front_end_pid"])
    return pids


async def test_two_front_ends_share_one_engine_and_its_jobs(tmp_path: Path) -> None:
    async with http_server(tmp_path, "--api-server-count", "2") as server:
        assert len(await front_end_pids(server.base)) == 2, "both front-ends take connections"
        texts: list[str] = []

        async def one() -> None:
            async with Client(server.url) as client:
                result = await client.call_tool("generate", {"messages": CHAT, "max_tokens": 12, "temperature": 0})
                assert not result.is_error, result.content
                texts.append(result.structured_content["text"])

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(one)
        assert len(texts) == 6 and len(set(texts)) == 1 and texts[0].strip(), texts

        prompts = [f"Count to {n}:" for n in range(5)]
        async with Client(server.url) as client:
            started = await client.call_tool("batch", {"prompts": prompts, "max_tokens": 8, "wait": False})
            job_id = started.structured_content["job"]["job_id"]
            refused = await client.call_tool("load_model", {"name": "SmolLM2-135M-Instruct"})
            assert refused.is_error and "--api-server-count" in refused.content[0].text
        for _ in range(240):  # polled through new connections: either front-end answers
            async with Client(server.url) as client:
                status = (await client.call_tool("job_status", {"job_id": job_id})).structured_content
            if status["status"] == "completed":
                break
            await anyio.sleep(0.5)
        assert status["status"] == "completed" and status["completed"] == len(prompts), status
        async with Client(server.url) as client:
            items = (await client.call_tool("job_results", {"job_id": job_id})).structured_content["items"]
        assert [i["index"] for i in items] == list(range(len(prompts))) and all(i["text"] for i in items)
        await anyio.sleep(1.5)  # every front-end has published its latest figures
        async with httpx.AsyncClient() as http:
            scrape = (await http.get(f"{server.base}/metrics")).text
        families = [f.name for f in text_string_to_metric_families(scrape)]
        assert len(families) == len(set(families)), "each family once, whichever front-end answered"
        ttft = [s for f in text_string_to_metric_families(scrape) for s in f.samples if s.name == TTFT_COUNT]
        assert {s.labels["front_end"] for s in ttft} == {"0", "1"}
        assert sum(s.value for s in ttft) >= 6, "both front-ends' calls, summed over front_end"
        processes = descendants(server.proc.pid)
        assert len(processes) >= 3, "an engine core and two front-ends"
    assert server.proc.returncode == 0
    assert_all_gone(processes)


def test_settings_that_cannot_run_several_front_ends_stop_the_start(tmp_path: Path) -> None:
    stderr = start_fails(tmp_path, "--api-server-count", "2")  # stdio
    assert "--api-server-count above 1 needs --transport http" in stderr


async def test_when_the_engine_core_dies_the_server_stops_with_the_reason(tmp_path: Path) -> None:
    async with http_server(tmp_path, "--api-server-count", "2") as server:
        processes = descendants(server.proc.pid)
        (core,) = [p for p in processes if "EngineCore" in p.name() + " ".join(p.cmdline())]
        core.kill()
        await anyio.to_thread.run_sync(lambda: server.proc.wait(120))
        assert server.proc.returncode != 0
        assert "the engine core ended" in server.log.read_text()
    assert_all_gone(processes)
