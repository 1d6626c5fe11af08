"""SQLite state that survives restarts (sqlite-utils): jobs, their items, the request log.

Writes from the hot path are buffered and flushed in one transaction (`flush`), so per request
there is one list append, not one SQLite commit. A job and its items are written at once when the
job is accepted: nothing a client was told is accepted can be lost.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from mcp_llm.core.db import migrate

JOB_OPEN = ("queued", "running")
ITEM_RESULT_COLUMNS = (
    "status",
    "text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "queue_ms",
    "ttft_ms",
    "tpot_ms",
    "total_ms",
    "error",
    "finished_at",
    "scores",
)


# The batch item (its index in the job) the current task runs: set per item task by the job runner, so each
# request-log row of a batch names its item and executions can be counted per item (a re-run shows twice).
request_item: ContextVar[int | None] = ContextVar("request_item", default=None)


USAGE_COLUMNS = ("requests", "errors", "prompt_tokens", "output_tokens")
USAGE_UPSERT = (
    "insert into usage (client, minute, kind, requests, errors, prompt_tokens, output_tokens)"
    " values (?, ?, ?, ?, ?, ?, ?) on conflict (client, minute, kind) do update set"
    " requests = requests + excluded.requests, errors = errors + excluded.errors,"
    " prompt_tokens = prompt_tokens + excluded.prompt_tokens, output_tokens = output_tokens + excluded.output_tokens"
)


def _usage_of(row: dict[str, Any]) -> dict[str, int]:
    """One request-log row as usage: tokens count only what the engine did (a failed request's prompt too)."""
    ok = row.get("status") == "ok"
    return {
        "requests": 1,
        "errors": 0 if ok else 1,
        "prompt_tokens": row.get("prompt_tokens") or 0,
        "output_tokens": (row.get("completion_tokens") or 0) if ok else 0,
    }


def _usage_increments(rows: list[dict[str, Any]]) -> list[tuple]:
    """The request-log rows summed per (client, minute, kind), as USAGE_UPSERT's parameters."""
    sums: dict[tuple, dict[str, int]] = {}
    for row in rows:
        key = (row.get("client") or "unknown", int(row["at"] // 60), row.get("kind") or "unknown")
        total = sums.setdefault(key, dict.fromkeys(USAGE_COLUMNS, 0))
        for column, value in _usage_of(row).items():
            total[column] += value
    return [(*key, *(total[c] for c in USAGE_COLUMNS)) for key, total in sums.items()]


class StoreError(RuntimeError):
    """The database file is damaged or not a database; it is never overwritten."""


def open_database(path: Path) -> sqlite3.Connection:
    """The database file, checked (a writable data dir, an intact file, WAL mode) with the standard library
    alone, so the server can refuse a damaged one before its handshake; StoreError, file left as it is, if not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        raise StoreError(
            f"The data dir {path.parent} is on a read-only file system, so the database {path} cannot be "
            "written. Give the server a writable --data-dir and start again; nothing was changed."
        )
    conn = sqlite3.connect(path)
    try:
        if conn.execute("pragma quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check found damage")
        conn.execute("pragma journal_mode=wal")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _unusable(path, exc) from exc
    return conn


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    return StoreError(
        f"The database {path} cannot be used ({exc}). It was left as it is: move it away (jobs and the "
        "request log start empty) or restore a backup, then start again."
    )


class Store:
    """The database file in the data dir and the few queries the server needs."""

    def __init__(self, path: Path, request_log_max_rows: int = 100_000) -> None:
        import sqlite_utils  # 0.2 s: imported when the database opens, after the handshake

        self.db = sqlite_utils.Database(open_database(path))
        self.request_log_max_rows = request_log_max_rows
        self._item_updates: list[tuple] = []
        self._request_rows: list[dict[str, Any]] = []
        self.write_error: str | None = None  # why the last write failed, until one succeeds
        try:
            migrate(self.db)  # every table, by numbered migrations (core/db)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise _unusable(path, exc) from exc

    # --- jobs ---
    def create_job(
        self,
        job_id: str,
        kind: str,
        options: dict,
        inputs: list[Any],
        owner: str | None = None,
        lease_s: float = 0,
        client: str | None = None,
    ) -> None:
        """Persist a job of `client`'s and all its items, pending, in one transaction (leased to the server
        `owner` for `lease_s`)."""
        now = time.time()
        with self.db.conn:
            self.db["jobs"].insert(
                {
                    "id": job_id,
                    "kind": kind,
                    "status": "queued",
                    "created_at": now,
                    "updated_at": now,
                    "total": len(inputs),
                    "completed": 0,
                    "failed": 0,
                    "options": json.dumps(options),
                    "error": None,
                    "owner": owner,
                    "lease_until": now + lease_s,
                    "client": client,
                }
            )
            self.db["items"].insert_all(
                (
                    {"job_id": job_id, "idx": i, "input": json.dumps(x), "status": "pending"}
                    for i, x in enumerate(inputs)
                ),
                batch_size=1000,
            )

    def job(self, job_id: str) -> dict | None:
        rows = list(self.db["jobs"].rows_where("id = ?", [job_id]))
        return rows[0] if rows else None

    def jobs(
        self,
        statuses: Iterable[str] | None = None,
        limit: int = 100,
        newest_first: bool = True,
        client: str | None = None,
    ) -> list[dict]:
        """Jobs, optionally only those in `statuses`, only `client`'s."""
        wanted = list(statuses or ())
        clauses = [f"status in ({','.join('?' * len(wanted))})"] if wanted else []
        args: list[Any] = wanted + ([client] if client is not None else [])
        clauses += ["client = ?"] if client is not None else []
        order = "created_at desc" if newest_first else "created_at"
        where = " and ".join(clauses) or None
        return list(self.db["jobs"].rows_where(where, args or None, order_by=order, limit=limit))

    def claim_jobs(self, owner: str, lease_s: float, take_all: bool = False) -> list[str]:
        """Lease to `owner` the open jobs nobody holds (no owner, or a lease run out), or with `take_all` every
        open job; one statement, so two servers sharing the database never claim the same job."""
        now = time.time()
        free = "" if take_all else " and (owner is null or lease_until < ?)"
        with self.db.conn:
            rows = self.db.execute(
                f"update jobs set owner = ?, lease_until = ? where status in ('queued', 'running')"
                f" and (owner is null or owner != ?){free} returning id",
                [owner, now + lease_s, owner] + ([] if take_all else [now]),
            ).fetchall()
        return [row[0] for row in rows]

    def renew_leases(self, owner: str, lease_s: float) -> None:
        with self.db.conn:
            self.db.execute(
                "update jobs set lease_until = ? where owner = ? and status in ('queued', 'running')",
                [time.time() + lease_s, owner],
            )

    def item_counts(self, job_id: str) -> dict[str, int]:
        """Items of a job by status (pending, done, error) as written so far."""
        return dict(
            self.db.execute("select status, count(*) from items where job_id = ? group by status", [job_id]).fetchall()
        )

    def set_job_status(self, job_id: str, status: str, error: str | None = None) -> None:
        """Flush buffered item results, then record the job's status and counts. A cancelled job stays cancelled:
        a cancel written by another server sharing the database is never overwritten by the owner's "running"
        (its next lease renewal stops the job)."""
        self.flush()
        counts = self.item_counts(job_id)
        with self.db.conn:
            self.db.execute(
                "update jobs set status = case when status = 'cancelled' then status else ? end, updated_at = ?,"
                " error = ?, completed = ?, failed = ? where id = ?",
                [status, time.time(), error, counts.get("done", 0), counts.get("error", 0), job_id],
            )

    def pending_items(self, job_id: str) -> list[tuple[int, Any]]:
        rows = self.db.execute(
            "select idx, input from items where job_id = ? and status = 'pending' order by idx", [job_id]
        ).fetchall()
        return [(idx, json.loads(raw)) for idx, raw in rows]

    def items(self, job_id: str, offset: int = 0, limit: int = 100) -> list[dict]:
        return list(
            self.db["items"].rows_where(
                "job_id = ?",
                [job_id],
                order_by="idx",
                offset=offset,
                limit=limit,
                select="idx, status, text, finish_reason, prompt_tokens, "
                "completion_tokens, queue_ms, ttft_ms, tpot_ms, total_ms, error, scores",
            )
        )

    def save_item(self, job_id: str, idx: int, result: dict[str, Any]) -> None:
        """Buffer one finished item (status done or error; keys from ITEM_RESULT_COLUMNS); written at the next flush."""
        row = {**result, "finished_at": time.time()}
        self._item_updates.append((*(row.get(c) for c in ITEM_RESULT_COLUMNS), job_id, idx))

    # --- request log ---
    def log_request(self, row: dict[str, Any]) -> None:
        """Buffer one request-log row (with the batch item the current task runs, if any); written at the next
        flush."""
        self._request_rows.append({"at": time.time(), "item": request_item.get(), **row})

    def requests(self, limit: int = 100, completed_except: str | None = None) -> list[dict]:
        """The newest request-log rows; with `completed_except`, only completed ones not of that kind."""
        self.flush()
        where = "status = 'ok' and kind != ?" if completed_except else None
        args = [completed_except] if completed_except else None
        return list(self.db["requests"].rows_where(where, args, order_by="id desc", limit=limit))

    # --- usage (fed by the request log) ---
    def usage_since(self, client: str, since: float, kind: str | None = None) -> dict[str, int]:
        """What `client` used from `since` (unix time, rounded down to its minute) on, written and buffered:
        requests, errors, prompt_tokens, output_tokens (only of `kind`, if given)."""
        minute = int(since // 60)
        where = "client = ? and minute >= ?" + (" and kind = ?" if kind else "")
        args = [client, minute] + ([kind] if kind else [])
        row = self.db.execute(
            "select coalesce(sum(requests), 0), coalesce(sum(errors), 0), coalesce(sum(prompt_tokens), 0),"
            f" coalesce(sum(output_tokens), 0) from usage where {where}",
            args,
        ).fetchone()
        total = dict(zip(USAGE_COLUMNS, row, strict=True))
        for pending in self._request_rows:
            if pending["client"] == client and pending["at"] >= minute * 60 and kind in (None, pending["kind"]):
                for column, value in _usage_of(pending).items():
                    total[column] += value
        return total

    def usage_rows(self, since: float, client: str | None = None, bucket_s: int = 3600) -> list[dict]:
        """Usage per client and `bucket_s` bucket (unix time of its start) from `since` on (after a flush)."""
        self.flush()
        bucket = max(bucket_s // 60, 1)
        where = "minute >= ?" + (" and client = ?" if client is not None else "")
        args: list[Any] = [int(since // 60)] + ([client] if client is not None else [])
        sums = ", ".join(f"sum({c}) as {c}" for c in USAGE_COLUMNS)
        rows = self.db.execute(
            f"select client, (minute / {bucket}) * {bucket * 60} as start, {sums} from usage where {where}"
            " group by client, start order by client, start",
            args,
        ).fetchall()
        return [dict(zip(("client", "start", *USAGE_COLUMNS), row, strict=True)) for row in rows]

    def open_work(self, client: str) -> dict[str, int]:
        """The client's open jobs and their pending items."""
        jobs, items = self.db.execute(
            "select count(*), coalesce(sum(total - completed - failed), 0) from jobs"
            " where client = ? and status in ('queued', 'running')",
            [client],
        ).fetchone()
        return {"jobs": jobs, "items": items}

    # --- retention ---
    def prune(
        self,
        now: float,
        jobs_s: float,
        tasks_s: float,
        benchmarks_s: float,
        usage_s: float,
        conversations_s: float = float("inf"),
    ) -> dict[str, int]:
        """Delete what is past its retention: finished jobs (and their items) last updated before `now - jobs_s`,
        tasks past their ttl or `tasks_s`, benchmark runs, usage minutes and idle conversations (with their
        turns) past theirs. Open jobs stay."""
        self.flush()
        old_jobs = "status not in ('queued', 'running') and updated_at < ?"
        with self.db.conn:
            items = self.db.execute(
                f"delete from items where job_id in (select id from jobs where {old_jobs})", [now - jobs_s]
            )
            counts = {"items": items.rowcount}
            counts["jobs"] = self.db.execute(f"delete from jobs where {old_jobs}", [now - jobs_s]).rowcount
            counts["tasks"] = self.db.execute(
                "delete from tasks where created_at < ? or (ttl_ms is not null and created_at + ttl_ms / 1000.0 < ?)",
                [now - tasks_s, now],
            ).rowcount
            counts["benchmarks"] = self.db.execute(
                "delete from benchmarks where created_at < ?", [now - benchmarks_s]
            ).rowcount
            counts["usage"] = self.db.execute(
                "delete from usage where minute < ?", [int((now - usage_s) // 60)]
            ).rowcount
            idle = "select id from conversations where updated_at < ?"
            self.db.execute(f"delete from turns where conversation_id in ({idle})", [now - conversations_s])
            counts["conversations"] = self.db.execute(
                "delete from conversations where updated_at < ?", [now - conversations_s]
            ).rowcount
        return counts

    def size_bytes(self) -> int:
        """The database's size (pages in use, not the file's free pages)."""
        pages, free, size = (
            self.db.execute(f"pragma {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size")
        )
        return (pages - free) * size

    # --- benchmarks ---
    def save_benchmark(self, row: dict[str, Any]) -> None:
        """Store one finished benchmark (request and rows as JSON, the chart as PNG bytes)."""
        self.db["benchmarks"].insert({**row, "created_at": time.time()}, replace=True)

    def benchmark(self, benchmark_id: str) -> dict | None:
        rows = list(self.db["benchmarks"].rows_where("id = ?", [benchmark_id]))
        return rows[0] if rows else None

    def benchmarks(self, limit: int = 50, client: str | None = None) -> list[dict]:
        """The newest benchmarks (only `client`'s, if given), without their charts."""
        columns = ["id", "created_at", "kind", "title", "rows", "client"]
        where, args = ("client = ?", [client]) if client is not None else (None, None)
        rows = self.db["benchmarks"].rows_where(
            where, args, select=", ".join(columns), order_by="created_at desc", limit=limit
        )
        return list(rows)

    # --- writing ---
    def flush(self) -> None:
        """Write everything buffered in one transaction and bound the request log. If the database cannot be
        written (sqlite3.Error raised), nothing is lost: the buffers are kept for the next flush."""
        items, self._item_updates = self._item_updates, []
        rows, self._request_rows = self._request_rows, []
        if not items and not rows:
            return
        assignments = ", ".join(f"{c} = ?" for c in ITEM_RESULT_COLUMNS)
        try:
            with self.db.conn:
                if items:
                    self.db.conn.executemany(f"update items set {assignments} where job_id = ? and idx = ?", items)
                if rows:
                    self.db["requests"].insert_all(rows)
                    self.db.conn.executemany(USAGE_UPSERT, _usage_increments(rows))
                    self.db.execute(
                        "delete from requests where id <= (select max(id) from requests) - ?",
                        [self.request_log_max_rows],
                    )
        except sqlite3.Error as exc:  # disk full, read-only, locked: keep it all for the next flush
            self._item_updates[:0], self._request_rows[:0] = items, rows
            self.write_error = str(exc)
            raise
        self.write_error = None

    def close(self) -> None:
        """Flush and close; results that cannot be written now stay pending in the database and run again."""
        try:
            self.flush()
        finally:
            self.db.close()
