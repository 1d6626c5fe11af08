"""Fair serving benchmark: does an agent's interactive call wait behind another client's bulk work?

For each scheduling policy (`--policies priority,fcfs`; one engine start each, in this process):

  idle         client B's short `generate` calls (MCP tool path, in-memory client) on an idle engine
  backlog N    the same calls while client A keeps N batch items outstanding (jobs topped up as they drain;
               N from `--backlogs`, e.g. 100 and 2000)
  bulk cost    A's batch throughput (output tok/s) alone, and with B's calls running alongside
  fair share   A and B start equal batches together (end-time ratio); C runs three jobs against D's one (D's
               items done when D's job ends, against C's)

Ratios are within one run: p50 at the largest backlog over p50 at the smallest (goal <= 1.2), p50 under load over
idle, bulk throughput with B over alone (goal >= 0.95), the two equal jobs' end times (goal within 20 %).

    python bench/fairness.py [--policies priority,fcfs] [--backlogs 100,2000] [--calls 20] [--out results.json]
                             [--model DIR --load-format dummy --dtype bfloat16 --no-eager]   (the GPU run)

A benchmark, not a test: figures depend on the machine. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BULK_TOKENS = 16
SHORT = {"prompt": "Hello", "max_tokens": 8, "ignore_eos": True, "temperature": 0}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def short_calls(client: Any, calls: int, until: asyncio.Event | None = None) -> list[float]:
    """Sequential 8-token `generate` calls; seconds each (stops early when `until` is set)."""
    latencies = []
    for _ in range(calls):
        if until is not None and until.is_set():
            break
        started = time.perf_counter()
        result = await client.call_tool("generate", SHORT)
        assert not result.is_error, result.content
        latencies.append(time.perf_counter() - started)
    return latencies


def submit(svc: Any, client: str, items: int, tag: str = "") -> str:
    from mcp_llm.schemas import SamplingOptions

    inputs = [{"prompt": f"Story {tag}{i}:"} for i in range(items)]
    return svc.jobs.submit(inputs, SamplingOptions(max_tokens=BULK_TOKENS, ignore_eos=True, temperature=0), client)


@contextlib.asynccontextmanager
async def steady_backlog(svc: Any, client: str, items: int, tag: str) -> AsyncIterator[None]:
    """`client` keeps `items` bulk items outstanding (submitted, not finished) while the block runs: as its jobs
    drain, new ones top the backlog up (every 50 ms), so each call is measured behind the whole backlog, not
    behind what is left of a job that is ending. Every job is cancelled at the end."""
    jobs: list[str] = []

    def outstanding() -> int:
        live = (svc.jobs.progress(j) for j in jobs)
        return sum(p.total - p.done for p in live if p is not None and not p.finished.is_set())

    async def top_up() -> None:
        while True:
            if (missing := items - outstanding()) > 0:
                jobs.append(submit(svc, client, missing, f"{tag}{len(jobs)}-"))
            await asyncio.sleep(0.05)

    feeder = asyncio.create_task(top_up())
    try:
        yield
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        for job in jobs:
            await svc.jobs.cancel(job)


async def finished(svc: Any, job_id: str) -> float:
    await svc.jobs.progress(job_id).finished.wait()
    return time.perf_counter()


async def measure_policy(policy: str, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    from mcp import Client

    from mcp_llm.core.services import open_services
    from mcp_llm.server.app import create_app
    from mcp_llm.settings import Settings

    engine = {"model": args.model, "load_format": args.load_format, "dtype": args.dtype} if args.model else {}
    settings = Settings(
        data_dir=data_dir / policy,
        models_dir=Settings().model_store,  # the shared model store: the model is prepared once per machine
        scheduling_policy=policy,
        max_model_len=1024,
        enforce_eager=args.eager,
        **engine,
    )
    row: dict[str, Any] = {"policy": policy}
    async with open_services(settings) as svc, Client(create_app(settings, shared=svc)) as b:
        config = svc.engine.config()
        gate = svc.jobs.gate  # the window while interactive calls run, and the seats lent to bulk work when quiet
        row["max_num_seqs"], row["job_window"], row["lent_seats"] = config.max_num_seqs, gate.window, gate.spare
        await short_calls(b, 2)  # warm-up
        idle = await short_calls(b, args.calls)
        row["idle"] = {"p50_s": statistics.median(idle), "p95_s": percentile(idle, 0.95), "calls": len(idle)}
        for backlog in args.backlogs:
            async with steady_backlog(svc, "A", backlog, f"b{backlog}-"):
                await asyncio.sleep(0.5)  # A's items are in the engine first
                loaded = await short_calls(b, args.calls)
            row[f"backlog_{backlog}"] = {
                "p50_s": statistics.median(loaded),
                "p95_s": percentile(loaded, 0.95),
                "calls": len(loaded),
            }
        # bulk throughput alone and with B's calls alongside
        items = args.backlogs[0] * 2
        for label, with_b in (("bulk_alone", False), ("bulk_with_b", True)):
            started = time.perf_counter()
            job = submit(svc, "A", items, label)
            stop = asyncio.Event()
            side = asyncio.create_task(short_calls(b, 10_000, until=stop)) if with_b else None
            end = await finished(svc, job)
            stop.set()
            if side is not None:
                await side
            row[label] = {"items": items, "tok_per_s": items * BULK_TOKENS / (end - started)}
        # fair share: equal jobs together; three jobs against one
        started = time.perf_counter()
        first, second = submit(svc, "A", args.backlogs[0], "fa"), submit(svc, "B", args.backlogs[0], "fb")
        ends = await asyncio.gather(finished(svc, first), finished(svc, second))
        spans = sorted(e - started for e in ends)
        row["equal_jobs_end_ratio"] = spans[0] / spans[1]
        many = [submit(svc, "C", args.backlogs[0], f"c{n}") for n in range(3)]
        one = submit(svc, "D", args.backlogs[0], "d")
        await finished(svc, one)
        row["three_vs_one"] = {
            "d_items": args.backlogs[0],
            "c_items_done_when_d_ended": sum(svc.jobs.progress(j).completed for j in many),
        }
        for job in many:
            await svc.jobs.cancel(job)
    return row


def ratios(row: dict[str, Any], backlogs: list[int]) -> dict[str, float]:
    small, large = row[f"backlog_{backlogs[0]}"]["p50_s"], row[f"backlog_{backlogs[-1]}"]["p50_s"]
    # one engine step with the window full of bulk items (each step adds one token per item), and the steps a
    # short call needs (its prefill and each token): on the CPU, where a full batch makes each step slower, the
    # loaded call's p50 over these steps says how much of its time is waiting rather than the step cost
    step_s = row["job_window"] / row["bulk_alone"]["tok_per_s"]
    return {
        "p50_large_over_small_backlog": large / small,
        "p50_loaded_over_idle": large / row["idle"]["p50_s"],
        "p50_loaded_over_full_batch_steps": large / ((SHORT["max_tokens"] + 1) * step_s),
        "bulk_with_b_over_alone": row["bulk_with_b"]["tok_per_s"] / row["bulk_alone"]["tok_per_s"],
        "equal_jobs_end_ratio": row["equal_jobs_end_ratio"],
    }


def table(rows: list[dict[str, Any]], backlogs: list[int]) -> str:
    head = ["policy", "idle p50", *(f"backlog {n} p50 / p95" for n in backlogs), "bulk tok/s alone / with B"]
    head += ["equal jobs end ratio", "C done when D (of D's)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["policy"], f"{r['idle']['p50_s']:.2f} s"]
        cells += [f"{r[f'backlog_{n}']['p50_s']:.2f} / {r[f'backlog_{n}']['p95_s']:.2f} s" for n in backlogs]
        cells += [f"{r['bulk_alone']['tok_per_s']:.0f} / {r['bulk_with_b']['tok_per_s']:.0f}"]
        cells += [f"{r['equal_jobs_end_ratio']:.2f}"]
        cells += [f"{r['three_vs_one']['c_items_done_when_d_ended']} ({r['three_vs_one']['d_items']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fairness-") as tmp:
        for policy in args.policies:
            print(f"measuring {policy} ...", file=sys.stderr)
            row = await measure_policy(policy, args, Path(tmp))
            rows.append(row | {"ratios": ratios(row, args.backlogs)})
    return {
        "at": datetime.now(UTC).isoformat(),
        "machine": platform.platform(),
        "bulk_tokens": BULK_TOKENS,
        "short_call": SHORT,
        "backlogs": args.backlogs,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", default="priority,fcfs", type=lambda v: v.split(","))
    parser.add_argument("--backlogs", default="100,2000", type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--model", help="a model folder (default: the bundled SmolLM2); on the GPU .gpu/model8b")
    parser.add_argument("--load-format", default="auto", help="`dummy`: random weights from the config (GPU runs)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--eager", action=argparse.BooleanOptionalAction, default=True, help="skip graph capture")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "fairness" / "cpu.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(table(result["rows"], args.backlogs))
    for row in result["rows"]:
        print(row["policy"], json.dumps({k: round(v, 3) for k, v in row["ratios"].items()}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
