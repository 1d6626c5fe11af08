"""Tools `batch`, `job_status`, `job_results`, `cancel_job`, `list_jobs`: many prompts, one engine, jobs in SQLite."""

from __future__ import annotations

import time
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.core.access import Principal
from mcp_llm.core.inference import check_size
from mcp_llm.core.jobs import JobProgress, item_of, job_status_of
from mcp_llm.core.registry import adapters
from mcp_llm.core.services import Services
from mcp_llm.errors import InputError
from mcp_llm.schemas import (
    BatchResult,
    ChatMessage,
    JobResults,
    JobState,
    JobStatus,
    SamplingOptions,
)
from mcp_llm.server.tools.common import (
    AdapterArg,
    IncludeReasoningArg,
    PickArg,
    ToolChoiceArg,
    ToolsArg,
    batch_result,
    current_task,
    flat_sampling_options,
    principal_of,
    report_progress,
    services_of,
    tool_errors,
)

JobIdArg = Annotated[str, Field(description="The id `batch` returned.", min_length=1, max_length=64)]


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


def with_adapters(
    items: list[dict], svc: Services, default: str | None, per_item: list[str | None] | None, caller: Principal
) -> None:
    """Attach each item's adapter (resolved now, so a resumed job still has its folder); InputError if unknown
    or not the caller's to use."""
    if per_item is not None and len(per_item) != len(items):
        raise InputError(f"item_adapters has {len(per_item)} entries for {len(items)} items: give one per item.")
    for item, name in zip(items, per_item or [None] * len(items), strict=True):
        resolved = adapters.resolve_adapter(svc, name or default, caller)
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
    tools: ToolsArg = None,
    tool_choice: ToolChoiceArg = None,
    include_reasoning: IncludeReasoningArg = False,
    pick: PickArg = "first",
) -> BatchResult:
    """Run many prompts through the engine at once (continuous batching), as a persisted job.

    All items go to the engine together; vLLM schedules them as they fit. Progress notifications
    report items done. One bad item (e.g. too long for the context) gets an item `error` and the
    others still run. The job is stored before it starts: with wait=false the call returns its
    `job_id` at once (poll `job_status`, page `job_results`); a job interrupted by a restart resumes.
    Sampling options apply to every item: a structured-output mode constrains each, and with `logprobs`,
    `prompt_logprobs` or `n` each item's result carries its confidence, log-probabilities or samples.
    So do `tools` (each chat item may call them: its result has `tool_calls`), `pick` and `include_reasoning`
    (with the server's --reasoning-parser each item's `text` is the answer alone, `reasoning` the rest).
    """
    svc = services_of(ctx)
    answer = {"tools": tools, "tool_choice": tool_choice, "pick": pick, "include_reasoning": include_reasoning}
    await svc.answering(sampling, **answer)  # refused before the job is stored: nothing fetched, ever
    items = batch_inputs(prompts, messages, svc.settings.max_batch_items)
    if tools and prompts is not None:
        raise InputError("`tools` need `messages` (chats): the model's chat template is what shows it the tools.")
    chars = sum(len(p) for p in prompts or ()) + sum(len(m.content) for chat in messages or () for m in chat)
    check_size(chars, svc.settings.max_input_chars, "The batch (all items together)")
    with_adapters(items, svc, adapter, item_adapters, principal_of(ctx))
    caller = principal_of(ctx)
    job_id = svc.jobs.submit(items, sampling, caller.client, caller, answer)
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


@tool_errors
async def job_status(ctx: Context, job_id: JobIdArg) -> JobStatus:
    """Where a batch job stands: status, items done/failed/pending, live progress."""
    return job_status_of(services_of(ctx), job_id, principal_of(ctx))


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
    svc = services_of(ctx)
    job = job_status_of(svc, job_id, principal_of(ctx))
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
    svc = services_of(ctx)
    status = job_status_of(svc, job_id, principal_of(ctx))
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
    """Recent batch jobs, newest first: the caller's own (an admin sees every client's)."""
    svc = services_of(ctx)
    caller = principal_of(ctx)
    rows = svc.store.jobs([status] if status else None, limit=limit, client=None if caller.admin else caller.client)
    return [job_status_of(svc, r["id"]) for r in rows]


TOOLS = [batch, job_status, job_results, cancel_job, list_jobs]
