"""Pieces every tool uses: reaching the services, turning our errors into tool errors, flat sampling args."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import inspect
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from mcp_llm.background import repeating
from mcp_llm.core import access, answers, loadtest
from mcp_llm.core.access import Principal
from mcp_llm.core.jobs import item_of, job_status_of, result_pages
from mcp_llm.core.schemas import LevelRow, Workload
from mcp_llm.core.services import Services
from mcp_llm.engine.base import EngineState
from mcp_llm.engine.swap import gate_waiter
from mcp_llm.errors import InputError, Unavailable
from mcp_llm.schemas import BatchResult, SamplingOptions
from mcp_llm.server import auth
from mcp_llm.server.arg_errors import describe
from mcp_llm.server.output_schemas import quick_to_check
from mcp_llm.server.schemas import SwapConfirmation

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class TaskHooks:
    """Set while a tool runs as an MCP task (tasks.py): progress becomes the task's status message, and a
    batch job the tool starts is recorded on the task (so the task outlives a restart with its job)."""

    on_progress: Callable[[str], None]
    on_job: Callable[[str], None]


current_task: ContextVar[TaskHooks | None] = ContextVar("current_task", default=None)


class ProgressLine:
    """One call's progress values, kept strictly increasing as the protocol asks.

    A keep-alive sent while the call waits (engine start, swap, restart) takes the next value between the last
    one sent and the next whole number; once keep-alives went out before the tool's own first report, the
    tool's values are shifted by one (`done + 1` of `total + 1`), so they still rise above them. A tool that
    repeats a value (a job with nothing finished in an interval) gets a step in between too."""

    def __init__(self) -> None:
        self.last: float | None = None  # the last value sent
        self.base: float | None = None  # the last value that was not a step in between
        self.steps = 0  # steps in between since `base`
        self.offset = 0.0
        self.own_reports = 0

    def between(self) -> float:
        """The next value above the last one sent and below the next whole number: base + gap x (1 - 1/(n+1)),
        which keeps rising for as many steps as a call can take (halving would stop rising after ~50)."""
        self.steps += 1
        base = self.base if self.base is not None else 0.0
        self.last = base + (math.floor(base) + 1 - base) * (1 - 1 / (self.steps + 1))
        return self.last

    def keep_alive(self) -> float:
        if self.own_reports == 0:
            self.offset = 1.0
        return self.between()

    def own(self, done: float, total: float | None) -> tuple[float, float | None]:
        self.own_reports += 1
        value = done + self.offset
        if self.last is not None and value <= self.last:
            value = self.between()
        else:
            self.last, self.base, self.steps = value, value, 0
        return value, (total + self.offset if total is not None else None)


_progress_line: ContextVar[ProgressLine | None] = ContextVar("progress_line", default=None)


def _line() -> ProgressLine:
    line = _progress_line.get()
    if line is None:  # outside tool_errors (tests, helpers): one line for this context from now on
        line = ProgressLine()
        _progress_line.set(line)
    return line


async def report_progress(ctx: Context, done: float, total: float | None, message: str) -> None:
    """Progress of a long tool: a notification to the caller, or the task's status message under a task.
    While the engine is swapped or restarted (requests wait), the message says so."""
    if (waiting := _waiting_for(ctx)) is not None:
        message = f"{message} (waiting: {waiting})"
    value, total = _line().own(done, total)
    await _send_progress(ctx, value, total, message)


async def _send_progress(ctx: Context, done: float, total: float | None, message: str) -> None:
    hooks = current_task.get()
    if hooks is not None:
        hooks.on_progress(message)
        return
    await ctx.report_progress(done, total, message)  # sent only when the caller gave a progress token


def wants_progress(ctx: Context) -> bool:
    """Whether progress reaches the caller: it gave a progress token (JSON-RPC) or a progress callback
    (in-process). The SDK keeps both on the request's dispatch context and offers no public test, so this reads
    them there; on a dispatcher it does not know, it answers yes (progress then costs a little, never lost)."""
    outbound = getattr(ctx.request_context.session, "_request_outbound", None)
    while hasattr(outbound, "_inner"):  # a wrapper (the 2026 line's, refusing server requests) around it
        outbound = outbound._inner
    for where in ("_progress_token", "_on_progress"):
        if hasattr(outbound, where):
            return getattr(outbound, where) is not None
    return True


@contextlib.asynccontextmanager
async def live_text(ctx: Context, interval_s: float) -> AsyncIterator[Callable[[str], None] | None]:
    """For a caller with a progress token: a callback that takes the answer's text so far, sent to the caller
    as progress messages at most every `interval_s` (hosts that show progress show the answer growing). None
    otherwise: the engine then runs the request unstreamed, with no per-token work."""
    if not wants_progress(ctx):
        yield None
        return
    latest, sent = [""], [""]

    async def send() -> None:
        if latest[0] != sent[0]:
            sent[0] = latest[0]
            await report_progress(ctx, len(sent[0]), None, sent[0])

    async with repeating(send, interval_s):
        yield lambda text: latest.__setitem__(0, text)


def _waiting_for(ctx: Context) -> str | None:
    """What the engine keeps calls waiting for now (runtime.waiting_for), None when it serves."""
    try:
        return ctx.request_context.lifespan_context.waiting_for()
    except (AttributeError, LookupError, ValueError):  # no request context, or a lifespan without a Runtime
        return None


async def wait_reporting(ctx: Context, waited: Awaitable[R], what: Callable[[], str | None], interval_s: float) -> R:
    """`waited`'s result; meanwhile keep-alive progress every `interval_s` ("engine starting: loading weights,
    38 s so far"), so hosts with a request timeout do not drop a call that waits for the engine."""
    task = asyncio.ensure_future(waited)
    started = time.monotonic()
    line = _line()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval_s)
            if done:
                return task.result()
            elapsed = time.monotonic() - started
            message = f"{what() or 'waiting for the engine'}, {elapsed:.0f} s so far"
            await _send_progress(ctx, line.keep_alive(), None, message)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def services_of(ctx: Context) -> Services:
    """The shared services the lifespan created (the engine is ready: `tool_errors` waited for it)."""
    return ctx.request_context.lifespan_context.require()


def principal_of(ctx: Context) -> Principal:
    """Who is calling (core/access): the bearer token's client and role over authenticated HTTP; else the one
    local client, an admin, named by its self-reported name (clientInfo) or 'unknown'."""
    try:
        name = ctx.session.client_params.client_info.name
    except AttributeError:
        name = "unknown"
    return auth.principal(fallback=name)


def client_name(ctx: Context) -> str:
    """The caller's client name, for the request log, ownership and per-client limits."""
    return principal_of(ctx).client


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wait for the engine (it starts in the background), then run the tool; InputError/Unavailable
    reach the client as a tool error carrying our message."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx: Any = kwargs["ctx"]
        runtime = ctx.request_context.lifespan_context
        interval_s = runtime.progress_interval_s
        owner = asyncio.current_task()
        _progress_line.set(ProgressLine())  # this call's own line (the wrapper runs in the call's task)

        async def at_gate(waited: Awaitable[None], what: Callable[[], str | None]) -> None:
            """A swap or restart holds this call's engine request: keep-alive progress meanwhile. Only from the
            call's own task: a job's item tasks (started by the call, maybe outliving it) wait silently, their
            job reports progress."""
            if asyncio.current_task() is not owner:
                return await waited
            return await wait_reporting(ctx, waited, what, interval_s)

        try:
            caller = principal_of(ctx)
            access.check_tool(caller, fn.__name__, kwargs)  # the one role check of every tool
            access.caller.set(caller)  # for the request path's quotas (this call's task and what it starts)
            if runtime.state is EngineState.STARTING:
                await wait_reporting(ctx, runtime.wait_ready(), runtime.waiting_for, interval_s)
            else:
                runtime.require()
            reset = gate_waiter.set(at_gate)
            try:
                return await fn(*args, **kwargs)
            finally:
                gate_waiter.reset(reset)
        except (InputError, Unavailable) as exc:
            raise ToolError(str(exc)) from exc
        except sqlite3.OperationalError as exc:  # disk full, read-only data dir, a lock held elsewhere
            raise ToolError(
                f"The server's database cannot be written now ({exc}): nothing was accepted. Retry once the "
                "cause is fixed (disk space, a read-only data dir, another process holding a lock)."
            ) from exc

    return wrapper


def flat_sampling_options(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Expose SamplingOptions' fields as top-level tool arguments, handed to `fn` as `sampling=`.

    One definition of every sampling field (bounds, defaults, docs) serves every tool that samples,
    while clients see flat arguments (`temperature`, `max_tokens`, ...) in the tool's inputSchema.
    """
    signature = inspect.signature(fn, eval_str=True)
    own = [p for name, p in signature.parameters.items() if name != "sampling"]
    fields = SamplingOptions.model_fields
    flat = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=info.default, annotation=Annotated[info.annotation, info]
        )
        for name, info in fields.items()
    ]
    keyword_only = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

    @functools.wraps(fn)
    async def wrapper(**kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name in fields if name in kwargs}
        try:
            sampling = SamplingOptions(**options)
        except ValidationError as exc:
            raise ToolError(describe(exc, list(fields))) from exc
        return await fn(sampling=sampling, **kwargs)

    del wrapper.__wrapped__  # inspect must see the flat signature, not fn's
    wrapper.__signature__ = signature.replace(parameters=keyword_only + flat)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in keyword_only + flat} | {
        "return": signature.return_annotation
    }
    return wrapper


def strict_tool(fn: Callable[..., Any]) -> Tool:
    """A Tool whose arguments reject unknown names (a misspelt `temperatur` is an error, not ignored), and whose
    output schema is the quick-to-check form of pydantic's (output_schemas)."""
    tool = Tool.from_function(fn)
    if tool.fn_metadata.output_schema is not None:
        tool.fn_metadata.output_schema = quick_to_check(tool.fn_metadata.output_schema)
    base = tool.fn_metadata.arg_model
    strict = create_model(base.__name__, __base__=base, __config__=None)
    strict.model_config = ConfigDict(**base.model_config, extra="forbid")
    strict.model_rebuild(force=True)
    tool.fn_metadata.arg_model = strict
    tool.parameters = strict.model_json_schema(by_alias=True)
    return tool


def require_local_engine(svc: Services, tool: str, instead: str) -> None:
    """InputError when the server serves a remote vLLM deployment: `tool` needs the engine in this process."""
    if svc.engine.backend != "local":
        raise InputError(
            f"`{tool}` needs the in-process engine, and this server forwards to the remote vLLM server at "
            f"{svc.settings.base_url} (--backend openai). {instead}"
        )


def require_own_engine(svc: Services, tool: str, instead: str) -> None:
    """As require_local_engine; also InputError when this process is one of several front-ends of an engine core
    that its parent owns (`--api-server-count`): starting or swapping engines is the parent's."""
    require_local_engine(svc, tool, instead)
    if svc.settings.api_server_count > 1:
        raise InputError(
            f"`{tool}` starts or replaces engines, and this server runs {svc.settings.api_server_count} front-end "
            "processes over one engine (--api-server-count): restart it with --api-server-count 1 to use it. "
            f"{instead}"
        )


async def confirmed(ctx: Context, message: str) -> bool:
    """The user's answer by elicitation; True when the client cannot elicit (`confirm` is the way to skip)."""
    capabilities = ctx.request_context.session.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return True
    answer = await ctx.elicit(message, schema=SwapConfirmation)
    return answer.action == "accept" and bool(answer.data.proceed)


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


AdapterArg = Annotated[
    str | None, Field(description="A registered LoRA adapter (list_adapters) to apply; none = the base model.")
]
# The arguments that shape an answer, shared by `generate` and `batch` (where they apply to every item).
ToolsArg = Annotated[
    list[dict[str, Any]] | None,
    Field(
        description="Functions the model may call, OpenAI's shape: "
        "[{'type': 'function', 'function': {'name', 'description', 'parameters': JSON Schema}}]. Needs messages."
    ),
]
ToolChoiceArg = Annotated[
    str | dict[str, Any] | None,
    Field(
        description="auto (default with tools: the model decides; needs the server's --tool-call-parser), none, "
        "required (some call, constrained: any model), or a tool's name (that call, constrained)."
    ),
]
IncludeReasoningArg = Annotated[
    bool, Field(description="Return the model's reasoning in `reasoning` (with the server's --reasoning-parser).")
]
PickArg = Annotated[
    answers.Pick,
    Field(description="With n > 1, which sample is `text`: the first, or the most confident (mean logprob)."),
]


async def measure(
    ctx: Context, svc: Services, requests: list[loadtest.Request], levels: list[int], label: str, workload: Workload
) -> list[LevelRow]:
    """Every level on whatever serves now, with progress per request."""
    rows = []
    for concurrency in levels:
        done = 0

        async def tick(concurrency: int = concurrency) -> None:
            nonlocal done
            done += 1
            if done % max(1, len(requests) // 10) == 0 or done == len(requests):
                message = f"{label}: concurrency {concurrency}, {done}/{len(requests)} requests"
                await report_progress(ctx, done, len(requests), message)

        records, wall = await loadtest.run_level(
            svc.recorder, requests, concurrency, client_name(ctx), tick, workload.ignore_eos
        )
        rows.append(loadtest.summarize(label, concurrency, records, wall))
    return rows


def table(rows: list[LevelRow]) -> str:
    """The rows as a Markdown table."""

    def ms(figures: dict[str, float | None], cut: str) -> str:
        value = figures.get(cut)
        return "-" if value is None else f"{value:.0f}"

    lines = [
        "| variant | conc. | ok/sent | req/s | out tok/s | TTFT p50/p95/p99 ms | TPOT p50/p99 ms "
        "| e2e p50/p95/p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ttft = "/".join(ms(r.ttft_ms, c) for c in ("p50", "p95", "p99"))
        e2e = "/".join(ms(r.e2e_ms, c) for c in ("p50", "p95", "p99"))
        tpot = "/".join(ms(r.tpot_ms, c) for c in ("p50", "p99"))
        lines.append(
            f"| {r.variant} | {r.concurrency} | {r.completed}/{r.requests} | {r.requests_per_s:.2f} | "
            f"{r.output_tokens_per_s:.1f} | {ttft} | {tpot} | {e2e} |"
        )
    return "\n".join(lines)


def chart_result(summary: str, rows: list[LevelRow], png: bytes, structured: BaseModel, uri: str) -> CallToolResult:
    """Text table, the chart as image content, a link to the stored run, and the structured result."""
    image = ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png")
    link = ResourceLink(
        type="resource_link", uri=uri, name=uri.removeprefix("benchmarks://"), mime_type="application/json"
    )
    images = [image] if png else []
    return CallToolResult(
        content=[TextContent(type="text", text=f"{summary}\n\n{table(rows)}"), *images, link],
        structured_content=structured.model_dump(mode="json"),
    )
