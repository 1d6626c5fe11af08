"""Numbered migrations, applied in order and never edited once released: a new table or column is a new step at
the end. Steps are idempotent, so a database made before migrations existed (version 0, its tables made on the
fly) takes them all safely."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def m001_tables(db: sqlite_utils.Database) -> None:
    """Jobs and their items, the request log, benchmarks, the model and adapter registries, tasks."""
    db["jobs"].create(
        {"id": str, "kind": str, "status": str, "created_at": float, "updated_at": float, "total": int}
        | {"completed": int, "failed": int, "options": str, "error": str, "owner": str, "lease_until": float},
        pk="id",
        if_not_exists=True,
    )
    db["items"].create(
        {"job_id": str, "idx": int, "input": str, "status": str, "text": str, "finish_reason": str}
        | {"prompt_tokens": int, "completion_tokens": int, "queue_ms": float, "ttft_ms": float, "tpot_ms": float}
        | {"total_ms": float, "error": str, "finished_at": float},
        pk=("job_id", "idx"),
        foreign_keys=[("job_id", "jobs", "id")],
        if_not_exists=True,
    )
    db["requests"].create(
        {"id": int, "at": float, "client": str, "kind": str, "job_id": str, "item": int, "model": str}
        | {"status": str, "prompt_tokens": int, "completion_tokens": int, "ttft_ms": float, "total_ms": float}
        | {"error": str, "prompt": str, "completion": str},
        pk="id",
        if_not_exists=True,
    )
    db["benchmarks"].create(
        {"id": str, "created_at": float, "kind": str, "title": str, "request": str, "rows": str, "chart": bytes},
        pk="id",
        if_not_exists=True,
    )
    db["models"].create(
        {"name": str, "path": str, "base_model": str, "scheme": str, "strategy": str, "disk_bytes": int}
        | {"param_bytes": int, "perplexity": float, "tokens_per_s": float, "kernels": str, "metrics": str}
        | {"report": str, "created_at": float},
        pk="name",
        if_not_exists=True,
    )
    db["adapters"].create(
        {"name": str, "path": str, "base_model": str, "rank": int, "target_modules": str, "source": str}
        | {"created_at": float, "figures": str},
        pk="name",
        if_not_exists=True,
    )
    db["tasks"].create(
        {"task_id": str, "tool": str, "status": str, "status_message": str, "job_id": str, "result": str}
        | {"created_at": float, "updated_at": float, "ttl_ms": int},
        pk="task_id",
        if_not_exists=True,
    )


def m002_job_leases(db: sqlite_utils.Database) -> None:
    """Servers sharing one database lease their jobs (databases made before leases lack the columns)."""
    for column, kind in (("owner", str), ("lease_until", float)):
        if column not in db["jobs"].columns_dict:
            db["jobs"].add_column(column, kind)


def m003_request_items(db: sqlite_utils.Database) -> None:
    """The request log names the batch item each request ran (counting executions per item)."""
    if "item" not in db["requests"].columns_dict:
        db["requests"].add_column("item", int)


def m004_indexes(db: sqlite_utils.Database) -> None:
    """What the job runner and `job_status` look items and jobs up by."""
    db["items"].create_index(["job_id", "status"], if_not_exists=True)
    db["jobs"].create_index(["status"], if_not_exists=True)


def m005_owners(db: sqlite_utils.Database) -> None:
    """Whose each job, task, benchmark and adapter is (core/access): jobs take their client from their options;
    older rows of the others stay without an owner (only admins see them). Adapters can be shared by an admin."""
    for table in ("jobs", "tasks", "benchmarks"):
        if "client" not in db[table].columns_dict:
            db[table].add_column("client", str)
    if "options" in db["jobs"].columns_dict:
        db.execute("update jobs set client = json_extract(options, '$.client') where client is null")
    for column, kind in (("owner", str), ("shared", int)):
        if column not in db["adapters"].columns_dict:
            db["adapters"].add_column(column, kind)
    db["jobs"].create_index(["client", "created_at"], if_not_exists=True)


def m006_usage(db: sqlite_utils.Database) -> None:
    """What each client used per minute and kind (requests, errors, tokens): quotas and usage://me read it; it
    outlives the bounded request log, which feeds it."""
    db["usage"].create(
        {"client": str, "minute": int, "kind": str, "requests": int, "errors": int}
        | {"prompt_tokens": int, "output_tokens": int},
        pk=("client", "minute", "kind"),
        if_not_exists=True,
    )


def m007_conversations(db: sqlite_utils.Database) -> None:
    """Conversations `chat` keeps: one row each (its owner), one row per turn."""
    db["conversations"].create(
        {"id": str, "client": str, "created_at": float, "updated_at": float, "forked_from": str},
        pk="id",
        if_not_exists=True,
    )
    db["turns"].create(
        {"conversation_id": str, "idx": int, "role": str, "content": str, "at": float}
        | {"prompt_tokens": int, "cached_tokens": int, "completion_tokens": int},
        pk=("conversation_id", "idx"),
        foreign_keys=[("conversation_id", "conversations", "id")],
        if_not_exists=True,
    )
    db["conversations"].create_index(["client", "updated_at"], if_not_exists=True)


def m008_item_scores(db: sqlite_utils.Database) -> None:
    """A batch item's confidence, logprobs, prompt_logprobs and samples (JSON), when the job asked for them."""
    if "scores" not in db["items"].columns_dict:
        db["items"].add_column("scores", str)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_tables,
    m002_job_leases,
    m003_request_items,
    m004_indexes,
    m005_owners,
    m006_usage,
    m007_conversations,
    m008_item_scores,
]
