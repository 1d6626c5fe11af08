"""Tool `tune_serving`: the host's model (MCP sampling, or our own engine with --sampling-fallback) proposes
engine variants, the server benchmarks each one on the workload, until the model stops or the time budget
would be overrun; returns the trace, a chart and the recommended settings (applied only when asked)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import Field, ValidationError

from mcp_llm.core.charts import variant_bars
from mcp_llm.core.loadtest import check_budget, estimate, plan, save
from mcp_llm.core.schemas import LevelRow, Variant, Workload
from mcp_llm.core.services import Services
from mcp_llm.core.variants import VariantServer
from mcp_llm.errors import InputError
from mcp_llm.server.journal import Journal, json_object_in, run_flow
from mcp_llm.server.schemas import Goal, Trial, TuneResult
from mcp_llm.server.tools.common import (
    chart_result,
    client_name,
    confirmed,
    measure,
    report_progress,
    require_own_engine,
    services_of,
    tool_errors,
)

KNOBS = {
    "max_num_seqs": "int 1-1024: most sequences per engine step",
    "max_num_batched_tokens": "int >= 16: token budget per step (prefill chunking)",
    "enable_prefix_caching": "bool: reuse KV cache of shared prefixes",
    "speculative": '"ngram" | "off": prompt-lookup speculative decoding',
    "model": "str: a registered model (e.g. a quantized checkpoint from list_models)",
}
PROPOSAL_SCHEMA = {
    "type": "object",
    "properties": {
        "thought": {"type": "string"},
        "stop": {"type": "boolean"},
        "variant": {
            "type": "object",
            "properties": {
                "max_num_seqs": {"type": "integer", "minimum": 1, "maximum": 1024},
                "max_num_batched_tokens": {"type": "integer", "minimum": 16},
                "enable_prefix_caching": {"type": "boolean"},
                "speculative": {"enum": ["ngram", "off"]},
            },
            "additionalProperties": False,
        },
    },
    "required": ["thought"],
}


def tune_system(goal: Goal, concurrency: int) -> str:
    aim = "the highest output tokens/s" if goal == "throughput" else "the lowest p95 end-to-end latency"
    return (
        f"You tune a vLLM serving engine by measurement, for {aim} at {concurrency} requests in flight. Each turn, "
        'reply with ONE JSON object and nothing else: {"thought": "...", "variant": {settings}} to measure a '
        'variant, or {"thought": "...", "stop": true} when more measurements will not help. Settings (leave out '
        "those you keep as they are):\n" + "\n".join(f"- {k}: {v}" for k, v in KNOBS.items())
    )


def score(row: LevelRow | None, goal: Goal) -> float | None:
    if row is None or row.completed == 0:
        return None
    if goal == "throughput":
        return row.output_tokens_per_s
    p95 = row.e2e_ms.get("p95")
    return None if p95 is None else -p95


def parse_proposal(reply: str) -> tuple[str | None, Variant | None]:
    """(thought, variant); variant None means stop. ValueError says what is wrong."""
    data = json_object_in(reply)
    if data.get("stop"):
        return data.get("thought"), None
    try:
        return data.get("thought"), Variant.model_validate(data.get("variant") or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'variant'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid variant ({problems}); the settings are {', '.join(KNOBS)}") from exc


def flags_of(settings: dict[str, Any]) -> str:
    return " ".join(
        f"--{k.replace('_', '-')} {str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()
    )


async def trial(
    ctx: Context, svc: Services, variant: Variant, requests: list, concurrency: int, workload: Workload
) -> dict:
    """Serve the variant, measure one level, serve the original again: the trial as JSON (journaled)."""
    started = time.monotonic()
    server = VariantServer(svc)
    try:
        reason = await server.use(variant)
        rows = [] if reason else await measure(ctx, svc, requests, [concurrency], variant.label(), workload)
    finally:
        await server.restore()
    row = rows[0].model_dump() if rows else None
    return {"row": row, "error": reason, "seconds": time.monotonic() - started}


async def tune(
    ctx: Context, journal: Journal, workload: Workload, goal: Goal, concurrency: int, budget: float, most: int
) -> tuple[list[Trial], str]:
    """The loop: measure the engine as it is, then each proposal, within the budget and `most` variants."""
    svc = services_of(ctx)
    requests = plan(workload, svc.engine.tokenize_text, svc.store, svc.engine.max_model_len)
    step_s = estimate(svc, workload, [concurrency], 1, 2)
    system = tune_system(goal, concurrency)
    trials: list[Trial] = []

    async def measured(thought: str | None, variant: Variant) -> Trial:
        done = await journal.act(lambda: trial(ctx, svc, variant, requests, concurrency, workload))
        row = LevelRow.model_validate(done["row"]) if done["row"] else None
        settings = variant.model_dump(exclude_none=True, exclude={"name"})
        return Trial(thought=thought, variant=settings, row=row, error=done["error"], seconds=done["seconds"])

    trials.append(await measured("baseline: the engine as it serves", Variant(name="current")))
    conversation = [("user", f"Baseline measured: {describe(trials[-1])}")]
    while True:
        spent = sum(t.seconds for t in trials)
        if len(trials) > most:
            return trials, "max_variants"
        if spent + step_s > budget:
            return trials, "budget"
        await report_progress(ctx, spent, budget, f"{len(trials)} variants measured, {spent:.0f}/{budget:.0f} s")
        reply = await journal.sample(system, conversation, 400, PROPOSAL_SCHEMA)
        try:
            thought, variant = parse_proposal(reply)
        except (ValueError, json.JSONDecodeError) as exc:  # one corrective re-ask, then stop
            conversation += [("assistant", reply), ("user", f"That reply was not usable: {exc}. Reply again.")]
            reply = await journal.sample(system, conversation, 400, PROPOSAL_SCHEMA)
            try:
                thought, variant = parse_proposal(reply)
            except (ValueError, json.JSONDecodeError) as again:
                trials.append(Trial(variant={}, error=f"unusable reply twice ({exc}; then {again})"))
                return trials, "malformed"
        if variant is None:
            return trials, "stop"
        trials.append(await measured(thought, variant))
        conversation += [("assistant", reply), ("user", f"Measured: {describe(trials[-1])}")]


def describe(t: Trial) -> str:
    if t.row is None:
        return f"{t.variant or 'current'} failed: {t.error}"
    r = t.row
    return (
        f"{t.variant or 'current'}: {r.output_tokens_per_s:.1f} output tok/s, {r.requests_per_s:.2f} req/s, "
        f"TTFT p95 {r.ttft_ms['p95']:.0f} ms, e2e p95 {r.e2e_ms['p95']:.0f} ms, {r.failed} failed"
    )


@tool_errors
async def tune_serving(
    ctx: Context,
    workload: Annotated[Workload, Field(description="The workload to tune for (as in `benchmark`).")] = Workload(),  # noqa: B008
    goal: Annotated[Goal, Field(description="throughput: output tok/s; latency: p95 end-to-end.")] = "throughput",
    concurrency: Annotated[int, Field(ge=1, le=512, description="Requests in flight while measuring.")] = 8,
    budget_s: Annotated[float, Field(gt=0, description="Time budget for the whole tuning (<= the setting).")] = 600,
    max_variants: Annotated[int, Field(ge=1, le=10, description="Most variants to try after the baseline.")] = 4,
    apply: Annotated[bool, Field(description="true: leave the engine on the best variant.")] = False,
    confirm: Annotated[bool, Field(description="true: swap engines without asking the user.")] = False,
) -> CallToolResult | InputRequiredResult:
    """Tune the engine settings by measurement: your model proposes variants (max_num_seqs,
    max_num_batched_tokens, prefix caching, speculative decoding, a registered quantized model), the server
    benchmarks each on the workload through the hot swap (the original engine serves again after each),
    until your model stops, `max_variants` or the time budget. Returns the trace, a chart and the best
    settings as flags; the engine keeps serving as before unless `apply` is true. Needs sampling (or a
    server started with --sampling-fallback, where the served model proposes).
    """
    svc = services_of(ctx)
    require_own_engine(svc, "tune_serving", "Benchmark the deployment with `benchmark` instead.")
    budget = min(budget_s, svc.settings.benchmark_budget_s)
    check_budget(svc, estimate(svc, workload, [concurrency], 1, 0), budget, "tuning's baseline measurement")
    asked = {"done": confirm}

    async def flow(journal: Journal) -> CallToolResult:
        if not asked["done"] and journal.mode != "replay":
            asked["done"] = True
            if not await confirmed(ctx, "Tune the engine? Each variant tried swaps the engine (every client waits)."):
                raise InputError("tune_serving was declined: nothing ran and the engine is unchanged.")
        trials, stopped = await tune(ctx, journal, workload, goal, concurrency, budget, max_variants)
        result, rows = outcome(svc, journal, trials, stopped, goal, concurrency)
        if apply and result.best:
            failure = await journal.act(lambda: VariantServer(svc).use(Variant.model_validate(result.best)))
            result.applied = failure is None
        return finish(svc, result, rows, client_name(ctx))

    return await run_flow(ctx, flow)


def outcome(
    svc: Services, journal: Journal, trials: list[Trial], stopped: str, goal: Goal, c: int
) -> tuple[TuneResult, list[LevelRow]]:
    """The scored trace, the best variant and the rows to chart (labelled by trial number)."""
    for t in trials:
        t.score = score(t.row, goal)
    ranked = [t for t in trials if t.score is not None]
    best = max(ranked, key=lambda t: t.score or 0.0).variant if ranked else {}
    rows = [t.row.model_copy(update={"variant": f"{i}: {t.row.variant}"}) for i, t in enumerate(trials) if t.row]
    bid = uuid.uuid4().hex[:12]
    result = TuneResult(
        benchmark_id=bid,
        uri=f"benchmarks://{bid}",
        goal=goal,
        concurrency=c,
        trials=trials,
        stopped=stopped,
        best=best,
        flags=flags_of(best),
        applied=False,
        reasoner=journal.reasoner,
        sampling_calls=journal.samples,
        spent_s=sum(t.seconds for t in trials),
    )
    return result, rows


def finish(svc: Services, result: TuneResult, rows: list[LevelRow], client: str) -> CallToolResult:
    """Store the run and shape the reply: summary and table, the chart, the structured result."""
    title = f"tune_serving ({result.goal}, concurrency {result.concurrency}): {len(rows)} variants"
    png = variant_bars(rows, title) if rows else b""
    save(svc, result.benchmark_id, "tune", title, result, png, client)
    best = result.best or "the engine as it is"
    summary = f"Tuning stopped ({result.stopped}) after {result.spent_s:.0f} s. Best: {best}."
    if result.best:
        summary += f" Flags: {result.flags}." + (" Applied: the engine serves it now." if result.applied else "")
    return chart_result(summary, rows, png, result, result.uri)


TOOLS = [tune_serving]
