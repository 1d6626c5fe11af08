"""Tools `batch`, `job_status`, `job_results`, `cancel_job`, `list_jobs`: many prompts, one engine, jobs in SQLite."""

from __future__ import annotations

import json
import time
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ResourceLink, TextContent
from pydantic import Field

from mcp_llm.errors import InputError
from mcp_llm.inference import check_json_schema
from mcp_llm.jobs import JobProgress
from mcp_llm.schemas import (
    BatchItem,
    BatchResult,
    ChatMessage,
    JobResults,
    JobState,
    JobStatus,
    SamplingOptions,
    Timing,
    Usage,
    tokens_per_s,
)
from mcp_llm.services import Services
from mcp_llm.tools import adapters
from mcp_llm.tools.common import (
    client_name,
    current_task,
    flat_sampling_options,
    report_progress,
    services,
    tool_errors,
)
from mcp_llm.tools.generate import AdapterArg

JobIdArg = Annotated[str, Field(description="The id `batch` returned.", min_length=1, max_length=64)]


def job_status_of(svc: Services, job_id: str) -> JobStatus:
    """The job's row, with live counts while it runs here; says so when the id is unknown."""
    row = svc.store.job(job_id)
    if row is None:
        raise InputError(f"No job with id {job_id!r}: list_jobs shows the known ones.")
    live: JobProgress | None = svc.jobs.progress(job_id)
    completed, failed = (
        (live.completed, live.failed) if live and row["status"] == "running" else (row["completed"], row["failed"])
    )
    return JobStatus(
        job_id=job_id,
        status=row["status"],
        total=row["total"],
        completed=completed,
        failed=failed,
        pending=row["total"] - completed - failed,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        progress=live.message() if live and row["status"] == "running" else None,
        error=row["error"],
    )


def item_of(row: dict) -> BatchItem:
    done = row["status"] == "done"
    return BatchItem(
        index=row["idx"],
        status=row["status"],
        text=row["text"],
        finish_reason=row["finish_reason"],
        error=row["error"],
        usage=Usage(
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            total_tokens=row["prompt_tokens"] + row["completion_tokens"],
        )
        if done
        else None,
        timing=Timing(
            queue_ms=row["queue_ms"],
            ttft_ms=row["ttft_ms"],
            tpot_ms=row["tpot_ms"],
            total_ms=row["total_ms"] or 0.0,
            tokens_per_s=tokens_per_s(row["completion_tokens"], row["total_ms"]),
        )
        if done
        else None,
    )


def batch_inputs(prompts: list[str] | None, messages: list[list[ChatMessage]] | None, limit: int) -> list[dict]:
    """The items as stored: {"prompt": ...} or {"messages": [...]}; says what to fix otherwise."""
    if (prompts is None) == (messages is None):
        raise InputError("Give exactly one of `prompts` (list of texts) or `messages` (list of chats).")
    items = (
        [{"prompt": p} for p in prompts]
        if prompts is not None
        else [{"messages": [m.model_dump() for m in chat]} for chat in messages]
    )
    if not items:
        raise InputError("The batch is empty: give at least one item.")
    if len(items) > limit:
        raise InputError(
            f"The batch has {len(items)} items; the limit is {limit} (setting max_batch_items). "
            "Split it into several batches."
        )
    return items


def with_adapters(items: list[dict], svc: Services, default: str | None, per_item: list[str | None] | None) -> None:
    """Attach each item's adapter (resolved now, so a resumed job still has its folder); InputError if unknown."""
    if per_item is not None and len(per_item) != len(items):
        raise InputError(f"item_adapters has {len(per_item)} entries for {len(items)} items: give one per item.")
    for item, name in zip(items, per_item or [None] * len(items), strict=True):
        resolved = adapters.resolve_adapter(svc, name or default)
        if resolved is not None:
            item["adapter"] = {"name": resolved.name, "path": resolved.path}


@flat_sampling_options
@tool_errors
async def batch(
    ctx: Context,
    sampling: SamplingOptions,
    prompts: Annotated[list[str] | None, Field(description="Raw texts, one item each. Give this or messages.")] = None,
    messages: Annotated[
        list[list[ChatMessage]] | None, Field(description="Chats, one item each. Give this or prompts.")
    ] = None,
    wait: Annotated[bool, Field(description="true: return every result; false: return the job id at once.")] = True,
    adapter: AdapterArg = None,
    item_adapters: Annotated[
        list[str | None] | None,
        Field(description="Per item, in order: an adapter name, or null for `adapter` (mixes adapters in one batch)."),
    ] = None,
) -> BatchResult:
    """Run many prompts through the engine at once (continuous batching), as a persisted job.

    All items go to the engine together; vLLM schedules them as they fit. Progress notifications
    report items done. One bad item (e.g. too long for the context) gets an item `error` and the
    others still run. The job is stored before it starts: with wait=false the call returns its
    `job_id` at once (poll `job_status`, page `job_results`); a job interrupted by a restart resumes.
    """
    svc = services(ctx)
    await check_json_schema(sampling.json_schema)  # refused before the job is stored: nothing fetched, ever
    items = batch_inputs(prompts, messages, svc.settings.max_batch_items)
    with_adapters(items, svc, adapter, item_adapters)
    job_id = svc.jobs.submit(items, sampling, client_name(ctx))
    if (hooks := current_task.get()) is not None:
        hooks.on_job(job_id)
    if not wait:
        return BatchResult(job=job_status_of(svc, job_id))

    async def report(progress: JobProgress) -> None:
        await report_progress(ctx, progress.done, progress.total, progress.message())

    started = time.monotonic()
    try:
        await svc.jobs.wait(job_id, report, svc.settings.progress_interval_s)
    except BaseException:  # the client cancelled or left: stop the job's engine requests too
        await svc.jobs.cancel(job_id)
        raise
    return batch_result(svc, job_id, time.monotonic() - started)


def batch_result(svc: Services, job_id: str, elapsed: float | None = None) -> BatchResult | CallToolResult:
    """A finished job's results in input order; past `max_result_chars` a summary with a link to the
    paged `jobs://{job_id}/results/{page}` resource instead (nothing is cut silently)."""
    job = job_status_of(svc, job_id)
    rows = svc.store.items(job_id, limit=job.total)
    tokens = sum(r["completion_tokens"] or 0 for r in rows)
    rate = tokens / elapsed if elapsed else None
    full = BatchResult(job=job, results=[item_of(r) for r in rows], elapsed_s=elapsed, output_tokens_per_s=rate)
    text = full.model_dump_json()
    if len(text) <= svc.settings.max_result_chars:
        return full
    pages = result_pages(svc, job_id)
    summary = BatchResult(
        job=job, elapsed_s=elapsed, output_tokens_per_s=rate, results_omitted=len(rows), results_uri=pages[0]
    )
    note = (
        f"Job {job_id}: {job.completed} items done, {job.failed} failed. The {len(rows)} results ({len(text):,} "
        f"characters) are over this server's max_result_chars ({svc.settings.max_result_chars:,}), so they are not "
        f"inline: read the {len(pages)} pages of jobs://{job_id}/results/{{page}} (page 1 is linked), or call "
        "job_results with offset/limit/max_chars."
    )
    link = ResourceLink(
        type="resource_link",
        uri=pages[0],
        name=f"job-{job_id}-results",
        mime_type="application/json",
        description=f"{len(rows)} results in {len(pages)} pages (each page names the next)",
    )
    return CallToolResult(
        content=[TextContent(type="text", text=note), link], structured_content=summary.model_dump(mode="json")
    )


def result_pages(svc: Services, job_id: str) -> list[str]:
    """URIs of the pages a job's results split into (each page at most max_result_chars of JSON)."""
    return [f"jobs://{job_id}/results/{n + 1}" for n in range(len(page_bounds(svc, job_id)))]


def page_bounds(svc: Services, job_id: str) -> list[tuple[int, int]]:
    """(offset, count) of each results page: items in order, a page closed before it would pass the bound."""
    bound, bounds, start, size = svc.settings.max_result_chars, [], 0, 0
    rows = svc.store.items(job_id, limit=1_000_000)
    for i, row in enumerate(rows):
        length = len(json.dumps(item_of(row).model_dump())) + 2  # as the page is written: json.dumps, ", " apart
        if i > start and size + length > bound:
            bounds.append((start, i - start))
            start, size = i, 0
        size += length
    bounds.append((start, len(rows) - start))
    return bounds


@tool_errors
async def job_status(ctx: Context, job_id: JobIdArg) -> JobStatus:
    """Where a batch job stands: status, items done/failed/pending, live progress."""
    return job_status_of(services(ctx), job_id)


@tool_errors
async def job_results(
    ctx: Context,
    job_id: JobIdArg,
    offset: Annotated[int, Field(ge=0, description="First item index of the page.")] = 0,
    limit: Annotated[int, Field(ge=1, le=1000, description="Items per page.")] = 100,
    max_chars: Annotated[
        int | None, Field(ge=1000, description="Also end the page before its JSON passes this many characters.")
    ] = None,
) -> JobResults:
    """A page of a job's results in input order (pending items show status pending); pages by count
    (`limit`) and by size (`max_chars`, default the server's max_result_chars); `next_offset` continues."""
    svc = services(ctx)
    job = job_status_of(svc, job_id)
    bound = max_chars or svc.settings.max_result_chars
    rows, size = [], 0
    for row in svc.store.items(job_id, offset=offset, limit=limit):
        size += len(item_of(row).model_dump_json()) + 1
        if rows and size > bound:
            break
        rows.append(row)
    end = offset + len(rows)
    return JobResults(
        job=job, offset=offset, items=[item_of(r) for r in rows], next_offset=end if end < job.total else None
    )


@tool_errors
async def cancel_job(ctx: Context, job_id: JobIdArg) -> JobStatus:
    """Cancel a running job: its engine requests stop at once; finished items are kept."""
    svc = services(ctx)
    status = job_status_of(svc, job_id)
    if status.status not in ("queued", "running"):
        raise InputError(f"Job {job_id} is already {status.status}; only queued or running jobs can be cancelled.")
    await svc.jobs.cancel(job_id)
    return job_status_of(svc, job_id)


@tool_errors
async def list_jobs(
    ctx: Context,
    status: Annotated[JobState | None, Field(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
) -> list[JobStatus]:
    """Recent batch jobs, newest first."""
    svc = services(ctx)
    rows = svc.store.jobs([status] if status else None, limit=limit)
    return [job_status_of(svc, r["id"]) for r in rows]


TOOLS = [batch, job_status, job_results, cancel_job, list_jobs]
