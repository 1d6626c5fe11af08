"""Tools `benchmark` and `compare_benchmarks`: load-test the serving engine (optionally several engine variants
through the hot swap, rolled back after), return a table and a PNG chart, keep the run as `benchmarks://{id}`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from mcp_llm.core import loadtest
from mcp_llm.core.charts import benchmark_chart
from mcp_llm.core.loadtest import check_budget, estimate, save
from mcp_llm.core.schemas import LevelRow, Variant, Workload
from mcp_llm.core.variants import VariantServer
from mcp_llm.errors import InputError
from mcp_llm.server.schemas import BenchmarkResult, Comparison
from mcp_llm.server.tools.common import (
    chart_result,
    client_name,
    confirmed,
    measure,
    principal_of,
    report_progress,
    require_own_engine,
    services_of,
    tool_errors,
)

Levels = Annotated[
    list[Annotated[int, Field(ge=1, le=512)]],
    Field(min_length=1, max_length=8, description="Concurrency levels (requests in flight), e.g. [1, 4, 16]."),
]


@tool_errors
async def benchmark(
    ctx: Context,
    workload: Annotated[Workload, Field(description="What to send (see the fields).")] = Workload(),  # noqa: B008
    concurrency: Levels = [1, 4, 16],  # noqa: B006
    variants: Annotated[
        list[Variant] | None,
        Field(max_length=6, description="Engine settings to compare, each served through the hot swap."),
    ] = None,
    include_current: Annotated[bool, Field(description="Also measure the engine as it serves now.")] = True,
    budget_s: Annotated[float | None, Field(gt=0, description="Refuse if estimated longer (<= the setting).")] = None,
    confirm: Annotated[bool, Field(description="true: swap engines for variants without asking the user.")] = False,
) -> CallToolResult:
    """Load-test the serving engine and chart the result: throughput, TTFT, TPOT and end-to-end latency
    (p50/p95/p99) at each concurrency level, one line per engine variant.

    The workload is synthetic (prompt/output length ranges, a shared-prefix fraction, tenants), your prompts,
    or a replay of the request log; every level sends `workload.requests` requests. `variants` (e.g.
    [{"max_num_seqs": 8}, {"speculative": "ngram"}, {"model": "smollm2-w8a8"}]) are served one after another
    through the hot swap, which every client feels, so unless `confirm` is true a client that can elicit is
    asked first; the original engine always serves again afterwards. A run estimated over the time budget
    is refused with the estimate. The run is kept: `benchmarks://{id}` (and `compare_benchmarks`).
    """
    svc = services_of(ctx)
    variants = list(variants or [])
    if variants:
        require_own_engine(svc, "benchmark` with `variants", "Benchmark the deployment as it serves (no variants).")
    runs = ([Variant(name="current")] if include_current or not variants else []) + variants
    labels = [v.label() for v in runs]
    if len(set(labels)) != len(labels):
        raise InputError(f"Variant labels repeat ({labels}): give each variant a distinct `name`.")
    server = VariantServer(svc)
    for variant in variants:
        server.spec_for(variant)  # an unknown model or bad setting is refused before anything is measured
    requests = loadtest.plan(workload, svc.engine.tokenize_text, svc.store, svc.engine.max_model_len)
    swaps = len(variants) + (1 if variants else 0)
    seconds = estimate(svc, workload, concurrency, len(runs), swaps)
    check_budget(svc, seconds, budget_s, "benchmark")
    impact = f"benchmark {len(variants)} engine variants (each swap pauses every client)"
    if variants and not confirm and not await confirmed(ctx, f"Run a {impact}?"):
        raise InputError("The benchmark was declined: nothing ran and the engine is unchanged.")
    started = time.monotonic()
    rows: list[LevelRow] = []
    failed: dict[str, str] = {}
    try:
        for index, variant in enumerate(runs):
            await report_progress(ctx, index, len(runs), f"serving variant {variant.label()}")
            reason = await server.use(variant)
            if reason:
                failed[variant.label()] = reason
                continue
            rows += await measure(ctx, svc, requests, concurrency, variant.label(), workload)
    finally:
        await server.restore()
    title = f"{svc.engine.model_name}: {workload.kind} workload, {workload.requests} requests per level"
    result = BenchmarkResult(
        benchmark_id=(bid := uuid.uuid4().hex[:12]),
        uri=f"benchmarks://{bid}",
        title=title,
        workload=workload,
        levels=concurrency,
        rows=rows,
        failed_variants=failed,
        estimate_s=seconds,
        elapsed_s=time.monotonic() - started,
        swaps=server.swaps,
        serving=svc.engine.model_name,
    )
    png = benchmark_chart(rows, title) if rows else b""
    save(svc, result.benchmark_id, "benchmark", title, result, png, client_name(ctx))
    summary = f"Benchmark {bid} ({result.elapsed_s:.0f} s, estimated {seconds:.0f} s)."
    if failed:
        summary += " Failed to start: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
    if not rows:
        raise InputError(f"No variant started, nothing was measured. {summary}")
    return chart_result(summary, rows, png, result, result.uri)


@tool_errors
async def compare_benchmarks(
    ctx: Context,
    benchmark_ids: Annotated[list[str], Field(min_length=1, max_length=6, description="Stored runs to compare.")],
) -> CallToolResult:
    """Put stored benchmark runs side by side: one table and one chart, each variant labelled with its run's id
    (list them at `benchmarks://index`)."""
    svc = services_of(ctx)
    rows: list[LevelRow] = []
    for bid in benchmark_ids:
        stored = svc.store.benchmark(bid)
        if stored is None or not principal_of(ctx).owns(stored["client"]):
            raise InputError(f"No benchmark {bid!r}: read benchmarks://index for the stored runs.")
        for row in json.loads(stored["rows"]):
            rows.append(LevelRow.model_validate(row | {"variant": f"{bid}: {row['variant']}"}))
    png = benchmark_chart(rows, "Stored benchmarks compared")
    result = Comparison(benchmark_ids=benchmark_ids, rows=rows)
    return chart_result(f"{len(benchmark_ids)} runs compared.", rows, png, result, f"benchmarks://{benchmark_ids[0]}")


TOOLS = [benchmark, compare_benchmarks]
