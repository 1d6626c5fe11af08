"""Scaling rules without an engine: vLLM's parallelism settings are checked before a start and named when wrong;
no database on a network share; servers sharing a database hand jobs over by lease. The lease tests use a
stand-in recorder (pure job bookkeeping on a real SQLite file). vLLM's own rejection of a layout is
tests/integration/test_engine_settings.py, a second server on an owned data dir
tests/system/test_start_failures.py; the engine paths are covered by test_backends and test_resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mcp_llm import datadir
from mcp_llm.core.jobs import JobRunner
from mcp_llm.core.store import Store
from mcp_llm.schemas import Completion, SamplingOptions, Timing, Usage
from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"data_parallel_size": 2, "data_parallel_size_local": 4}, "data_parallel_size_local"),
        ({"nnodes": 2, "node_rank": 2}, "node_rank"),
        ({"data_parallel_backend": "threads"}, "data_parallel_backend"),
    ],
)
def test_parallelism_settings_are_checked_before_start(fields: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Settings(**fields)


def test_a_data_dir_on_a_network_share_is_refused(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path / 'share'} nfs4 rw 0 0\n")
    datadir.refuse_network_share(tmp_path / "local", str(mounts))  # ext4: fine
    with pytest.raises(datadir.DataDirRefused, match="network filesystem \\(nfs4\\)"):
        datadir.refuse_network_share(tmp_path / "share" / "data", str(mounts))


class Tokens:
    def tokenize_text(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def tokenize_many(self, inputs: list, tools: object = None) -> list[list[int]]:
        return [self.tokenize_text(text) for text in inputs]


class StandInRecorder:
    """Completes each item after `delay_s` (forever when None), counting the items it ran."""

    def __init__(self, delay_s: float | None) -> None:
        self.engine, self.delay_s, self.ran = Tokens(), delay_s, 0

    async def complete(self, token_ids: list[int], sampling: SamplingOptions, **_: object) -> Completion:
        await asyncio.sleep(self.delay_s if self.delay_s is not None else 3600)
        self.ran += 1
        return Completion(
            text="ok",
            finish_reason="stop",
            usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
            timing=Timing(total_ms=1.0, tokens_per_s=1000.0),
        )


async def wait_for(condition, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_job_whose_server_stops_renewing_is_taken_over_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    a_store, b_store = Store(db), Store(db)
    a = JobRunner(a_store, StandInRecorder(None), lease_s=0.6)  # hangs: its server is about to die
    b = JobRunner(b_store, StandInRecorder(0.01), lease_s=0.6)
    job_id = a.submit([{"prompt": f"item {i}"} for i in range(5)], SamplingOptions(), "client")
    await b.maintain()
    assert b.progress(job_id) is None, "a live lease is not taken"
    for task in list(a._tasks.values()):  # server A dies: its tasks stop, its lease is no longer renewed
        task.cancel()
    await asyncio.sleep(0.8)
    await b.maintain()
    await wait_for(lambda: b_store.job(job_id)["status"] == "completed")
    assert b.recorder.ran == 5 and b_store.item_counts(job_id) == {"done": 5}
    await b.maintain()
    assert b.recorder.ran == 5, "a finished job is not run again"


async def test_cancel_through_another_server_stops_the_owner(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    a_store, b_store = Store(db), Store(db)
    a = JobRunner(a_store, StandInRecorder(None), lease_s=5)
    b = JobRunner(b_store, StandInRecorder(None), lease_s=5)
    job_id = a.submit([{"prompt": "item"}] * 3, SamplingOptions(), "client")
    await asyncio.sleep(0.1)
    assert await b.cancel(job_id)
    await a.maintain()
    await wait_for(lambda: a.progress(job_id).finished.is_set())
    assert a_store.job(job_id)["status"] == "cancelled" and not a._tasks


async def test_a_cancel_through_another_server_before_the_owner_starts_the_job_holds(tmp_path: Path) -> None:
    """The owner's job task marks the job running when it starts: a cancel written by another server in between
    is kept, and the owner stops the job at its next renewal (before, "running" overwrote "cancelled" and the job
    ran on, to be resumed by the other server when the owner died: seen in test_replicas)."""
    db = tmp_path / "shared.db"
    a_store, b_store = Store(db), Store(db)
    a = JobRunner(a_store, StandInRecorder(None), lease_s=5)
    b = JobRunner(b_store, StandInRecorder(None), lease_s=5)
    job_id = a.submit([{"prompt": "item"}] * 3, SamplingOptions(), "client")
    assert await b.cancel(job_id)  # A's job task has not run yet
    await asyncio.sleep(0.1)
    assert a_store.job(job_id)["status"] == "cancelled"
    await a.maintain()
    await wait_for(lambda: a.progress(job_id).finished.is_set())
    assert a_store.job(job_id)["status"] == "cancelled" and not a._tasks
    assert b.resume(take_all=False) == [], "nothing open is left for another server to take"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"api_server_count": 2}, "needs --transport http and the in-process engine"),  # stdio
        (
            {"api_server_count": 2, "transport": "http", "backend": "openai", "base_url": "http://127.0.0.1:1"},
            "needs --transport http and the in-process engine",
        ),
        ({"api_server_count": 2, "transport": "http", "embedding_model": "default"}, "an embedding engine per"),
    ],
)
def test_settings_that_cannot_run_several_front_ends_say_why(fields: dict, says: str) -> None:
    from mcp_llm.server.front_ends import refusal

    assert says in (refusal(Settings(**fields)) or "")
    assert refusal(Settings(**(fields | {"api_server_count": 1}))) is None


@pytest.mark.parametrize("count", [0, 65])
def test_an_api_server_count_out_of_range_names_the_range(count: int) -> None:
    with pytest.raises(ValueError, match="api_server_count") as caught:
        Settings(api_server_count=count)
    assert "greater than or equal to 1" in str(caught.value) or "less than or equal to 64" in str(caught.value)
