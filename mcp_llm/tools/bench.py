"""Tools `benchmark` and `compare_benchmarks`: load-test the serving engine (optionally several engine variants
through the hot swap, rolled back after), return a table and a PNG chart, keep the run as `benchmarks://{id}`."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel, Field

from mcp_llm import loadtest
from mcp_llm.charts import benchmark_chart
from mcp_llm.errors import InputError
from mcp_llm.loadtest import LevelRow, Workload
from mcp_llm.services import Services
from mcp_llm.tools.common import client_name, report_progress, require_local_engine, services, tool_errors
from mcp_llm.tools.models import confirmed
from mcp_llm.variants import Variant, VariantServer

DEFAULT_TPOT_S = 0.1  # CPU-sized guesses until the metrics window has figures
DEFAULT_PREFILL_TOK_S = 2000.0
DEFAULT_SWAP_S = 40.0
Levels = Annotated[
    list[Annotated[int, Field(ge=1, le=512)]],
    Field(min_length=1, max_length=8, description="Concurrency levels (requests in flight), e.g. [1, 4, 16]."),
]


class BenchmarkResult(BaseModel):
    """A stored benchmark run: one row per variant and concurrency level."""

    benchmark_id: str
    uri: str = Field(description="benchmarks://{id}: the stored run (its chart at benchmarks://{id}/chart).")
    title: str
    workload: Workload
    levels: list[int]
    rows: list[LevelRow]
    failed_variants: dict[str, str] = Field(description="Variants that did not start, with vLLM's reason.")
    estimate_s: float = Field(description="The duration estimated before the run.")
    elapsed_s: float
    swaps: int = Field(description="Engine swaps made (variants and the rollback).")
    serving: str = Field(description="The model serving after the run (the original: variants are rolled back).")


def estimate(svc: Services, workload: Workload, levels: list[int], variants: int, swaps: int) -> float:
    """Seconds a run should take, from the live TPOT/TTFT figures when the server has any."""
    latency = svc.metrics.snapshot(svc.engine.stats())["latency_ms"]
    tpot_ms = latency["tpot_ms"]["p50"]
    tpot_s = tpot_ms / 1000 if tpot_ms else DEFAULT_TPOT_S
    per_variant = loadtest.estimate_seconds(workload, levels, tpot_s, DEFAULT_PREFILL_TOK_S)
    return variants * per_variant + swaps * (svc.engine.last_swap_s or DEFAULT_SWAP_S)


def check_budget(svc: Services, seconds: float, budget_s: float | None, what: str) -> None:
    budget = min(budget_s or svc.settings.benchmark_budget_s, svc.settings.benchmark_budget_s)
    if seconds > budget:
        raise InputError(
            f"This {what} would take about {seconds:.0f} s, over the time budget of {budget:.0f} s "
            "(benchmark_budget_s). Send fewer requests, fewer levels or variants, or shorter outputs."
        )


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
    svc = services(ctx)
    variants = list(variants or [])
    if variants:
        require_local_engine(svc, "benchmark` with `variants", "Benchmark the deployment as it serves (no variants).")
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
    save(svc, result.benchmark_id, "benchmark", title, result, png)
    summary = f"Benchmark {bid} ({result.elapsed_s:.0f} s, estimated {seconds:.0f} s)."
    if failed:
        summary += " Failed to start: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
    if not rows:
        raise InputError(f"No variant started, nothing was measured. {summary}")
    return chart_result(summary, rows, png, result, result.uri)


def save(svc: Services, benchmark_id: str, kind: str, title: str, result: BaseModel, png: bytes) -> None:
    svc.store.save_benchmark(
        {
            "id": benchmark_id,
            "kind": kind,
            "title": title,
            "request": result.model_dump_json(exclude={"rows"}),
            "rows": json.dumps([r.model_dump() for r in getattr(result, "rows", [])]),
            "chart": png,
        }
    )


class Comparison(BaseModel):
    benchmark_ids: list[str]
    rows: list[LevelRow]


@tool_errors
async def compare_benchmarks(
    ctx: Context,
    benchmark_ids: Annotated[list[str], Field(min_length=1, max_length=6, description="Stored runs to compare.")],
) -> CallToolResult:
    """Put stored benchmark runs side by side: one table and one chart, each variant labelled with its run's id
    (list them at `benchmarks://index`)."""
    svc = services(ctx)
    rows: list[LevelRow] = []
    for bid in benchmark_ids:
        stored = svc.store.benchmark(bid)
        if stored is None:
            raise InputError(f"No benchmark {bid!r}: read benchmarks://index for the stored runs.")
        for row in json.loads(stored["rows"]):
            rows.append(LevelRow.model_validate(row | {"variant": f"{bid}: {row['variant']}"}))
    png = benchmark_chart(rows, "Stored benchmarks compared")
    result = Comparison(benchmark_ids=benchmark_ids, rows=rows)
    return chart_result(f"{len(benchmark_ids)} runs compared.", rows, png, result, f"benchmarks://{benchmark_ids[0]}")


TOOLS = [benchmark, compare_benchmarks]
