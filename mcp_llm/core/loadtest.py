"""Load generation for the `benchmark` tool: a workload becomes token-id requests, a concurrency level runs
them through the Recorder (so they are measured like any other request), and a level's records become one
row of figures (throughput, TTFT/TPOT/end-to-end percentiles); before a run, its estimated duration against
the time budget; after it, the stored run."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from mcp_llm.core.inference import Recorder
from mcp_llm.core.metrics import percentiles
from mcp_llm.core.schemas import LevelRow, Workload
from mcp_llm.core.store import Store
from mcp_llm.errors import InputError
from mcp_llm.schemas import SamplingOptions

if TYPE_CHECKING:
    from mcp_llm.core.services import Services

# Ordinary words: synthetic prompts are drawn from their tokens, so no special token lands in a prompt.
FILLER = (
    "the serving engine reads each prompt and writes an answer while many clients wait for their turn in the "
    "queue of requests that share one model on this machine with a cache of keys and values for every token "
    "river mountain city garden window number seven blue quiet market letter north music summer paper field"
)


@dataclass(frozen=True)
class Request:
    token_ids: list[int]
    max_tokens: int
    tenant: int


@dataclass(frozen=True)
class Record:
    ok: bool
    output_tokens: int = 0
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None


def plan(workload: Workload, tokenize: Callable[[str], list[int]], store: Store, max_model_len: int) -> list[Request]:
    """The requests one level sends, the same for every level and variant (so rows compare)."""
    rng = random.Random(workload.seed)
    outputs = [rng.randint(workload.output_tokens.min, workload.output_tokens.max) for _ in range(workload.requests)]
    tenants = [i % workload.tenants for i in range(workload.requests)]
    if workload.kind == "prompts":
        prompts = [tokenize(p) for p in workload.prompts or []]
        inputs = [prompts[i % len(prompts)] for i in range(workload.requests)]
    elif workload.kind == "replay":
        inputs, outputs = _replay(store, workload.requests, tokenize, rng)
        tenants = tenants[: len(inputs)]
    else:
        inputs = _synthetic(workload, tokenize, rng)
    requests = [Request(ids, out, t) for ids, out, t in zip(inputs, outputs, tenants, strict=True)]
    too_long = [i for i, r in enumerate(requests) if len(r.token_ids) + r.max_tokens > max_model_len]
    if too_long:
        r = requests[too_long[0]]
        raise InputError(
            f"{len(too_long)} requests do not fit the context ({max_model_len} tokens): request {too_long[0]} has "
            f"{len(r.token_ids)} prompt + {r.max_tokens} output tokens. Use shorter lengths."
        )
    return requests


def _synthetic(workload: Workload, tokenize: Callable[[str], list[int]], rng: random.Random) -> list[list[int]]:
    pool = tokenize(FILLER)
    lengths = [rng.randint(workload.prompt_tokens.min, workload.prompt_tokens.max) for _ in range(workload.requests)]
    prefix = [rng.choice(pool) for _ in range(max(lengths))]
    prompts = []
    for length in lengths:
        shared = round(length * workload.shared_prefix_fraction)
        prompts.append(prefix[:shared] + [rng.choice(pool) for _ in range(length - shared)])
    return prompts


def _replay(
    store: Store, count: int, tokenize: Callable[[str], list[int]], rng: random.Random
) -> tuple[list[list[int]], list[int]]:
    """The newest logged requests (not benchmarks'): their text when logged, else synthetic text of their length."""
    rows = store.requests(limit=count, completed_except="benchmark")
    if not rows:
        raise InputError("The request log has no completed requests to replay yet: use kind=synthetic or prompts.")
    pool = tokenize(FILLER)
    inputs = [
        tokenize(r["prompt"]) if r.get("prompt") else [rng.choice(pool) for _ in range(r["prompt_tokens"] or 1)]
        for r in reversed(rows)
    ]
    return inputs, [max(1, r["completion_tokens"] or 1) for r in reversed(rows)]


def estimate_seconds(workload: Workload, levels: list[int], tpot_s: float, prefill_tok_s: float) -> float:
    """A rough duration of one variant: waves of `c` requests, each a prefill and a decode whose step time
    grows with the batch (a 3% slowdown per extra sequence is typical of small models here)."""
    total = 0.0
    prompt = workload.prompt_tokens.mean if workload.kind == "synthetic" else 256
    for c in levels:
        waves = -(-workload.requests // c)
        total += waves * (c * prompt / prefill_tok_s + workload.output_tokens.mean * tpot_s * (1 + 0.03 * (c - 1)))
    return total


async def run_level(
    recorder: Recorder,
    requests: list[Request],
    concurrency: int,
    client: str,
    on_done: Callable[[], Awaitable[None]] | None = None,
    ignore_eos: bool = True,
) -> tuple[list[Record], float]:
    """Send every request with at most `concurrency` in flight; the records and the wall time."""
    gate = asyncio.Semaphore(concurrency)
    one_tenant = len({r.tenant for r in requests}) == 1

    async def one(request: Request) -> Record:
        async with gate:
            options = SamplingOptions(max_tokens=request.max_tokens, temperature=0, ignore_eos=ignore_eos)
            who = client if one_tenant else f"{client}/tenant-{request.tenant}"
            try:
                done = await recorder.complete(request.token_ids, options, client=who, kind="benchmark")
            except Exception:
                record = Record(ok=False)
            else:
                t = done.timing
                record = Record(True, done.usage.completion_tokens, t.ttft_ms, t.tpot_ms, t.total_ms)
        if on_done is not None:
            await on_done()
        return record

    started = time.monotonic()
    records = await asyncio.gather(*(one(r) for r in requests))
    return list(records), time.monotonic() - started


def summarize(variant: str, concurrency: int, records: list[Record], wall_s: float) -> LevelRow:
    ok = [r for r in records if r.ok]
    tokens = sum(r.output_tokens for r in ok)

    def cut(values: list[float | None]) -> dict[str, float | None]:
        figures = percentiles(values)
        return {k: figures[k] for k in ("p50", "p95", "p99")}

    return LevelRow(
        variant=variant,
        concurrency=concurrency,
        requests=len(records),
        completed=len(ok),
        failed=len(records) - len(ok),
        wall_s=wall_s,
        requests_per_s=len(ok) / wall_s if wall_s else 0.0,
        output_tokens_per_s=tokens / wall_s if wall_s else 0.0,
        ttft_ms=cut([r.ttft_ms for r in ok]),
        tpot_ms=cut([r.tpot_ms for r in ok]),
        e2e_ms=cut([r.e2e_ms for r in ok]),
    )


DEFAULT_TPOT_S = 0.1  # CPU-sized guesses until the metrics window has figures


DEFAULT_PREFILL_TOK_S = 2000.0


DEFAULT_SWAP_S = 40.0


def estimate(svc: Services, workload: Workload, levels: list[int], variants: int, swaps: int) -> float:
    """Seconds a run should take, from the live TPOT/TTFT figures when the server has any."""
    latency = svc.metrics.snapshot(svc.engine.stats())["latency_ms"]
    tpot_ms = latency["tpot_ms"]["p50"]
    tpot_s = tpot_ms / 1000 if tpot_ms else DEFAULT_TPOT_S
    per_variant = estimate_seconds(workload, levels, tpot_s, DEFAULT_PREFILL_TOK_S)
    return variants * per_variant + swaps * (svc.engine.last_swap_s or DEFAULT_SWAP_S)


def check_budget(svc: Services, seconds: float, budget_s: float | None, what: str) -> None:
    budget = min(budget_s or svc.settings.benchmark_budget_s, svc.settings.benchmark_budget_s)
    if seconds > budget:
        raise InputError(
            f"This {what} would take about {seconds:.0f} s, over the time budget of {budget:.0f} s "
            "(benchmark_budget_s). Send fewer requests, fewer levels or variants, or shorter outputs."
        )


def save(
    svc: Services, benchmark_id: str, kind: str, title: str, result: BaseModel, png: bytes, client: str | None = None
) -> None:
    """Store a finished run as `client`'s (benchmarks://{id})."""
    svc.store.save_benchmark(
        {
            "id": benchmark_id,
            "client": client,
            "kind": kind,
            "title": title,
            "request": result.model_dump_json(exclude={"rows"}),
            "rows": json.dumps([r.model_dump() for r in getattr(result, "rows", [])]),
            "chart": png,
        }
    )
