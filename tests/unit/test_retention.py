"""Retention on a real SQLite file: what is past its time goes (finished jobs with their items, tasks past their ttl
or the retention, benchmark runs, usage minutes), what is recent or still open stays; the job runner forgets the
live counts of jobs no longer running; a new job is refused while the database is over its size bound."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mcp_llm.core.conversations import Conversations
from mcp_llm.core.jobs import JobProgress, JobRunner
from mcp_llm.core.store import Store
from mcp_llm.errors import InputError
from mcp_llm.schemas import SamplingOptions
from mcp_llm.settings import Settings

DAY = 86_400
NOW = time.time()


def job(store: Store, job_id: str, status: str, age_days: float) -> None:
    store.create_job(job_id, "batch", {}, [{"prompt": "a"}, {"prompt": "b"}], client="alice")
    store.db["jobs"].update(job_id, {"status": status, "updated_at": NOW - age_days * DAY})


def test_rows_past_their_retention_go_and_the_rest_stay(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    job(store, "old-done", "completed", 40)
    job(store, "old-open", "running", 40)  # still open: never pruned
    job(store, "new-done", "completed", 1)
    tasks = [("t-old", NOW - 8 * DAY, None), ("t-ttl", NOW - 120, 60_000), ("t-new", NOW - 60, None)]
    for task_id, created, ttl in tasks:
        store.db["tasks"].insert({"task_id": task_id, "tool": "batch", "status": "completed", "created_at": created})
        store.db["tasks"].update(task_id, {"ttl_ms": ttl})
    for bench_id, age in (("b-old", 100), ("b-new", 1)):
        store.db["benchmarks"].insert({"id": bench_id, "created_at": NOW - age * DAY, "rows": "[]"})
    for minute in (int((NOW - 500 * DAY) // 60), int(NOW // 60)):
        store.db["usage"].insert({"client": "alice", "minute": minute, "kind": "generate", "requests": 1})
    kept = Conversations(store)
    for name, age in (("c-old", 31), ("c-new", 29)):
        created = kept.create("alice", system=f"{name}'s system")
        kept.append(created, [{"role": "user", "content": "hi"}])
        store.db["conversations"].update(created, {"updated_at": NOW - age * DAY})
        store.db["conversations"].update(created, {"forked_from": name})
    settings = Settings(data_dir=tmp_path)
    counts = store.prune(
        NOW,
        settings.job_retention_s,
        settings.task_retention_s,
        settings.benchmark_retention_s,
        settings.usage_retention_s,
        settings.conversation_retention_s,
    )
    assert counts == {"items": 2, "jobs": 1, "tasks": 2, "benchmarks": 1, "usage": 1, "conversations": 1}
    assert [r["forked_from"] for r in store.db["conversations"].rows] == ["c-new"] and store.db["turns"].count == 2
    assert sorted(r["id"] for r in store.db["jobs"].rows) == ["new-done", "old-open"]
    assert store.db["items"].count == 4 and [r["task_id"] for r in store.db["tasks"].rows] == ["t-new"]
    assert [r["id"] for r in store.db["benchmarks"].rows] == ["b-new"] and store.db["usage"].count == 1
    store.close()


def test_the_runner_forgets_finished_jobs_live_counts(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    runner = JobRunner(store, SimpleNamespace(quotas=None))  # type: ignore[arg-type]  # no engine work here
    runner._progress["gone"] = JobProgress(total=1)
    runner._cancelled.add("gone")
    runner.prune(NOW, Settings(data_dir=tmp_path))
    assert runner.progress("gone") is None and not runner._cancelled
    store.close()


def test_a_new_job_is_refused_while_the_database_is_over_its_bound(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    runner = JobRunner(store, SimpleNamespace(quotas=None))  # type: ignore[arg-type]
    runner.max_database_bytes = 1
    with pytest.raises(InputError, match=r"over its limit of 0 MB \(max_database_bytes\)"):
        runner.submit([{"prompt": "a"}], SamplingOptions(), "alice")
    assert store.db["jobs"].count == 0
    store.close()
