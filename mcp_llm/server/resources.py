"""MCP resources: engine configuration, live metrics, batch jobs.

Each resource is a plain async function of the Runtime and its URI parameters; RESOURCES lists them with how they
are listed, and `register` binds them to one server. Handlers are async: the SDK runs sync ones in worker threads,
and the SQLite connection belongs to the loop's.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from mcp_llm.core import accounting
from mcp_llm.core.conversations import Conversations
from mcp_llm.core.jobs import item_json, job_status_of, page_bounds
from mcp_llm.core.registry.adapters import registry as adapter_registry
from mcp_llm.core.registry.models import info, registry
from mcp_llm.core.services import Runtime, Services, configured
from mcp_llm.engine.base import EngineState
from mcp_llm.errors import InputError, Unavailable
from mcp_llm.server.auth import principal

JOB_PAGE = 100
Handler = Callable[..., Awaitable[str | bytes]]  # async (runtime, *URI parameters) -> body


async def ready(runtime: Runtime) -> Services:
    """The services once the engine serves; a resource error saying why otherwise."""
    try:
        return await runtime.wait_ready()
    except Unavailable as exc:
        raise ResourceError(str(exc)) from exc


async def model_config(runtime: Runtime) -> str:
    if runtime.state is EngineState.STARTING and runtime.settings is not None:  # answer now, not in 30 s
        return configured(runtime.settings, runtime.state, runtime.waiting_for() or "").model_dump_json(indent=2)
    return (await ready(runtime)).engine.config().model_dump_json(indent=2)


async def engine_metrics(runtime: Runtime) -> str:
    svc = await ready(runtime)
    return json.dumps(svc.metrics.snapshot(svc.engine.stats()), indent=2)


async def prometheus_metrics(runtime: Runtime) -> str:
    svc = await ready(runtime)
    return svc.prometheus_text().decode()


async def model(runtime: Runtime, name: str) -> str:
    svc = await ready(runtime)
    try:
        row = registry(svc).require(name)
    except InputError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    return info(row, svc.engine.model_name).model_dump_json(indent=2)


async def adapter(runtime: Runtime, name: str) -> str:
    svc = await ready(runtime)
    try:
        return adapter_registry(svc).get(name, principal()).model_dump_json(indent=2)
    except InputError as exc:
        raise ResourceNotFoundError(str(exc)) from exc


async def benchmarks(runtime: Runtime) -> str:
    caller = principal()
    rows = (await ready(runtime)).store.benchmarks(client=None if caller.admin else caller.client)
    return json.dumps([r | {"rows": json.loads(r["rows"]), "uri": f"benchmarks://{r['id']}"} for r in rows])


async def benchmark(runtime: Runtime, benchmark_id: str) -> str:
    stored = await stored_benchmark(runtime, benchmark_id)
    body = json.loads(stored["request"]) | {"rows": json.loads(stored["rows"]), "created_at": stored["created_at"]}
    return json.dumps(body | {"chart": f"benchmarks://{benchmark_id}/chart"})


async def benchmark_chart(runtime: Runtime, benchmark_id: str) -> bytes:
    return (await stored_benchmark(runtime, benchmark_id))["chart"]


async def stored_benchmark(runtime: Runtime, benchmark_id: str) -> dict:
    stored = (await ready(runtime)).store.benchmark(benchmark_id)
    if stored is None or not principal().owns(stored["client"]):
        raise ResourceNotFoundError(f"No benchmark {benchmark_id!r}: benchmarks://index lists the stored runs.")
    return stored


async def job(runtime: Runtime, job_id: str) -> str:
    svc = await ready(runtime)
    try:
        status = job_status_of(svc, job_id, principal())
    except InputError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    items = [item_json(r) for r in svc.store.items(job_id, limit=JOB_PAGE)]
    return json.dumps({"job": status.model_dump(), "items": items}, indent=2)


async def job_results_page(runtime: Runtime, job_id: str, page: str) -> str:
    svc = await ready(runtime)
    try:
        job_status_of(svc, job_id, principal())
    except InputError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    bounds = page_bounds(svc, job_id)
    if not page.isdigit() or not 1 <= int(page) <= len(bounds):
        raise ResourceNotFoundError(f"Job {job_id} has results pages 1 to {len(bounds)}; there is no page {page}.")
    offset, count = bounds[int(page) - 1]
    items = [item_json(r) for r in svc.store.items(job_id, offset=offset, limit=count)]
    following = f"jobs://{job_id}/results/{int(page) + 1}" if int(page) < len(bounds) else None
    body = {"job_id": job_id, "page": int(page), "pages": len(bounds), "offset": offset, "items": items}
    return json.dumps(body | {"next": following})


async def conversation(runtime: Runtime, conversation_id: str) -> str:
    """A conversation's turns, each with its token counts (prompt, from the prefix cache, answer)."""
    svc = await ready(runtime)
    kept = Conversations(svc.store)
    try:
        row = kept.get(conversation_id, principal())
    except InputError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    turns = [{k: v for k, v in t.items() if k != "conversation_id"} for t in kept.turns(conversation_id)]
    return json.dumps(row | {"turns": turns}, indent=2)


async def my_usage(runtime: Runtime) -> str:
    """The caller's usage over the last 24 hours by hour and the last 30 days by day, and its quotas."""
    svc, caller = await ready(runtime), principal()
    hours, days = accounting.report(svc, 24, "hour", caller), accounting.report(svc, 24 * 30, "day", caller)
    body = {"client": caller.client, "role": caller.role, "quotas": hours.quotas.get(caller.client, {})}
    body |= {"by_hour": hours.model_dump()["buckets"], "by_day": days.model_dump()["buckets"]}
    return json.dumps(body | {"last_30_days": days.totals.get(caller.client, {})}, indent=2)


async def clients_usage(runtime: Runtime) -> str:
    """Every client's usage over the last 30 days by day (admins)."""
    svc, caller = await ready(runtime), principal()
    if not caller.admin:
        raise ResourceError(f"usage://clients needs the admin role; client `{caller.client}` has {caller.role}.")
    return accounting.report(svc, 24 * 30, "day").model_dump_json(indent=2)


# Every resource: its handler and how it is listed (uri, name, title, description, mime type).
RESOURCES: list[tuple[Handler, dict[str, Any]]] = [
    (
        model_config,
        dict(
            uri="model://config",
            name="model_config",
            title="Serving engine configuration",
            description="Model, dtype, context length, batch limits, device, KV cache, prefix caching, vLLM version.",
            mime_type="application/json",
        ),
    ),
    (
        engine_metrics,
        dict(
            uri="metrics://engine",
            name="engine_metrics",
            title="Live serving metrics",
            description="Sliding-window p50/p95/p99 of queue time, TTFT, TPOT and latency; requests/s, output tok/s; "
            "running and waiting requests, KV-cache use, prefix-cache hit rate; lifetime totals.",
            mime_type="application/json",
        ),
    ),
    (
        prometheus_metrics,
        dict(
            uri="metrics://prometheus",
            name="prometheus_metrics",
            title="Prometheus exposition",
            description="Our mcp_llm_* series and the serving engine's own vllm:* series (labelled "
            'role="generator"; not the embedder\'s), in Prometheus text format.',
            mime_type="text/plain",
        ),
    ),
    (
        my_usage,
        dict(
            uri="usage://me",
            name="my_usage",
            title="Your usage and quotas",
            description="Your requests, errors, prompt and output tokens by hour (24 h) and day (30 days), and each "
            "quota set for you: used, limit, when it resets.",
            mime_type="application/json",
        ),
    ),
    (
        clients_usage,
        dict(
            uri="usage://clients",
            name="clients_usage",
            title="Every client's usage (admins)",
            description="Requests, errors, prompt and output tokens per client and day over 30 days.",
            mime_type="application/json",
        ),
    ),
    (
        conversation,
        dict(
            uri="conversations://{conversation_id}",
            name="conversation",
            title="A conversation",
            description="A `chat` conversation of yours: every turn, with its prompt tokens, how many came from the "
            "prefix cache, and its answer's tokens.",
            mime_type="application/json",
        ),
    ),
    (
        model,
        dict(
            uri="models://{name}",
            name="model",
            title="Registered model",
            description="A registered model: path, base model, scheme, sizes, perplexity, tokens/s, kernels, "
            "and for quantized models the full quantize report.",
            mime_type="application/json",
        ),
    ),
    (
        adapter,
        dict(
            uri="adapters://{name}",
            name="adapter",
            title="LoRA adapter",
            description="A registered LoRA adapter: base model, rank, target modules, source, training figures.",
            mime_type="application/json",
        ),
    ),
    (
        benchmarks,
        dict(
            uri="benchmarks://index",
            name="benchmarks",
            title="Stored benchmark runs",
            description="The newest benchmark and tune_serving runs: id, kind, title, when, and their rows.",
            mime_type="application/json",
        ),
    ),
    (
        benchmark,
        dict(
            uri="benchmarks://{benchmark_id}",
            name="benchmark",
            title="A benchmark run",
            description="A stored benchmark or tune_serving run: its request, rows and trace (chart: .../chart).",
            mime_type="application/json",
        ),
    ),
    (
        benchmark_chart,
        dict(
            uri="benchmarks://{benchmark_id}/chart",
            name="benchmark-chart",
            title="A benchmark run's chart",
            description="The PNG chart of a stored run: throughput, TTFT and end-to-end latency against concurrency.",
            mime_type="image/png",
        ),
    ),
    (
        job,
        dict(
            uri="jobs://{job_id}",
            name="job",
            title="Batch job",
            description=f"A batch job's status and its first {JOB_PAGE} item results (job_results pages the rest). "
            "Subscribe to it to be told (notifications/resources/updated) as it progresses and when it ends.",
            mime_type="application/json",
        ),
    ),
    (
        job_results_page,
        dict(
            uri="jobs://{job_id}/results/{page}",
            name="job-results-page",
            title="Batch job results, one page",
            description="Page N (from 1) of a job's results in input order, each page at most max_result_chars of "
            "JSON; `next` names the following page (null on the last).",
            mime_type="application/json",
        ),
    ),
]


def bind(fn: Handler, runtime: Runtime) -> Callable[..., Awaitable[str | bytes]]:
    """`fn` with this server's runtime filled in; the SDK sees the URI parameters only."""

    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> str | bytes:
        return await fn(runtime, *args, **kwargs)

    signature = inspect.signature(fn)
    handler.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    return handler


def register(mcp: MCPServer, runtime: Runtime) -> None:
    for fn, listing in RESOURCES:
        listing = dict(listing)
        mcp.resource(listing.pop("uri"), **listing)(bind(fn, runtime))
