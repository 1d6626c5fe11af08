"""Reading a server's database after a stop: which item results are stored, and the proof that each is stored
once while each item ran at least once (the request log counts the runs)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    """Rows from the server's database, read-only (the server may be running: WAL lets both read)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, args).fetchall()


def stored_done(db: Path, job_id: str) -> set[int]:
    """Items whose result is in the database (durable: they must never run again)."""
    return {idx for (idx,) in query(db, "select idx from items where job_id = ? and status = 'done'", job_id)}


def executions(db: Path, job_id: str) -> dict[int | None, list[str]]:
    """Each item's engine requests from the request log, in order, by status (ok, error, cancelled). A request
    cut off by SIGKILL has no row: rows are written when a request ends."""
    runs: dict[int | None, list[str]] = {}
    for item, status in query(db, "select item, status from requests where job_id = ? order by id", job_id):
        runs.setdefault(item, []).append(status)
    return runs


def assert_each_result_once_each_item_run_at_least_once(
    db: Path, job_id: str, items: int, page: dict, durable_before: set[int]
) -> dict[int | None, list[str]]:
    """The items table's primary key (job_id, idx) cannot hold two results of one item, so reading results back
    proves little: count executions in the request log instead. Returns the executions per item."""
    assert [item["index"] for item in page["items"]] == list(range(items))
    assert query(db, "select count(*), count(distinct idx) from items where job_id = ?", job_id) == [(items, items)]
    runs = executions(db, job_id)
    assert set(runs) == set(range(items)), f"every request-log row of the job names its item: {runs}"
    assert all("ok" in runs[i] for i in range(items)), runs  # at least once: every item ran to the end
    assert sum(len(r) for r in runs.values()) >= items
    for i in durable_before:  # a stored result is never run again: its one successful run is its last
        assert runs[i].count("ok") == 1 and runs[i][-1] == "ok", (i, runs[i])
    return runs
