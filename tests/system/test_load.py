"""Load: 64 concurrent HTTP clients for a bounded time against one server subprocess, mixing `generate`,
resources, blocking and background `batch` jobs and cancellations, with the in-flight bound set low enough to
refuse some. Nothing accepted is lost or duplicated, every refusal is an explicit busy error, the engine ends
idle, and the server's memory and open files stay bounded. `MCP_LLM_LOAD_S` sets the duration (CI: 45 s)."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import anyio
import psutil
import pytest
from mcp import Client
from mcp_types import Implementation

from tests.conftest import REPO
from tests.support.servers import HttpServer, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
CLIENTS = 64
DURATION_S = float(os.environ.get("MCP_LLM_LOAD_S", "45"))
MAX_INFLIGHT = 24
RSS_BOUND_MB = 400  # growth allowed across the run (caches, sqlite pages, metrics windows)
FD_BOUND = 40


def footprint(server: HttpServer) -> tuple[float, int]:
    proc = psutil.Process(server.proc.pid)
    return proc.memory_info().rss / 2**20, proc.num_fds()


class Tally:
    """Outcomes and latencies of every call, and the jobs to audit afterwards."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latency_ms: list[float] = []
        self.unexpected: list[str] = []
        self.jobs: dict[str, str] = {}  # job id -> "wait" | "cancelled"


async def one_call(client: Client, rng: random.Random, tally: Tally, me: int) -> None:
    roll, started = rng.random(), time.monotonic()
    if roll < 0.6:
        result = await client.call_tool("generate", {"prompt": f"Client {me} says", "max_tokens": 8})
        kind = "generate"
    elif roll < 0.75:
        await client.read_resource("metrics://engine")
        tally.outcomes["resource ok"] += 1
        return
    elif roll < 0.85:
        result = await client.call_tool("batch", {"prompts": [f"{me}-{i}" for i in range(3)], "max_tokens": 6})
        kind = "batch"
        if not result.is_error:
            tally.jobs[result.structured_content["job"]["job_id"]] = "wait"
    else:
        started_job = await client.call_tool(
            "batch", {"prompts": [f"long {me}-{i}" for i in range(4)], "max_tokens": 400, "wait": False}
        )
        job_id = started_job.structured_content["job"]["job_id"]
        await anyio.sleep(rng.uniform(0.1, 1.0))
        result = await client.call_tool("cancel_job", {"job_id": job_id})
        tally.jobs[job_id] = "cancelled"
        kind = "cancel"
    if not result.is_error:
        tally.outcomes[f"{kind} ok"] += 1
        tally.latency_ms.append((time.monotonic() - started) * 1000)
    elif "Busy: " in result.content[0].text:
        tally.outcomes[f"{kind} busy"] += 1
    else:
        tally.unexpected.append(f"{kind}: {result.content[0].text[:200]}")


async def client_loop(server: HttpServer, me: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(me)
    info = Implementation(name=f"load-{me}", version="0")
    async with Client(server.url, read_timeout_seconds=300, client_info=info) as c:
        while time.monotonic() < deadline:
            await one_call(c, rng, tally, me)


async def test_64_clients_lose_nothing_and_the_server_stays_bounded(tmp_path: Path) -> None:
    flags = ["--max-inflight-total", str(MAX_INFLIGHT)]
    async with http_server(tmp_path, *flags) as server:
        async with Client(server.url) as warm:
            await warm.call_tool("generate", {"prompt": "warm up", "max_tokens": 4})
        rss_before, fds_before = footprint(server)
        tally = Tally()
        deadline = time.monotonic() + DURATION_S
        async with anyio.create_task_group() as group:
            for me in range(CLIENTS):
                group.start_soon(client_loop, server, me, deadline, tally)
        async with Client(server.url) as auditor:
            with anyio.fail_after(120):  # cancelled jobs stop at once; blocking ones are done already
                while json.loads((await auditor.read_resource("metrics://engine")).contents[0].text)["engine"][
                    "running_requests"
                ]:
                    await anyio.sleep(0.5)
            lost = duplicated = 0
            for job_id, how in tally.jobs.items():
                status = (await auditor.call_tool("job_status", {"job_id": job_id})).structured_content
                page = (await auditor.call_tool("job_results", {"job_id": job_id, "limit": 100})).structured_content
                indices = [item["index"] for item in page["items"]]
                duplicated += len(indices) - len(set(indices))
                if how == "wait":
                    lost += status["total"] - status["completed"] - status["failed"]
                    assert status["status"] == "completed", status
                else:
                    assert status["status"] in ("cancelled", "completed"), status
            answer = await auditor.call_tool("generate", {"prompt": "The capital of France is", "max_tokens": 4})
        await anyio.sleep(2)
        rss_after, fds_after = footprint(server)
        assert server.proc.poll() is None
    figures = {
        "clients": CLIENTS,
        "duration_s": DURATION_S,
        "outcomes": dict(tally.outcomes),
        "jobs": len(tally.jobs),
        "lost_items": lost,
        "duplicated_items": duplicated,
        "p50_ms": statistics.median(tally.latency_ms),
        "p99_ms": statistics.quantiles(tally.latency_ms, n=100)[98],
        "rss_mb": [round(rss_before), round(rss_after)],
        "fds": [fds_before, fds_after],
    }
    print(json.dumps(figures))
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "load.json").write_text(json.dumps(figures, indent=2))
    assert not tally.unexpected, tally.unexpected[:5]
    assert (lost, duplicated) == (0, 0)
    assert not answer.is_error
    assert sum(tally.outcomes.values()) > CLIENTS, tally.outcomes
    assert rss_after - rss_before < RSS_BOUND_MB and fds_after - fds_before < FD_BOUND, figures
