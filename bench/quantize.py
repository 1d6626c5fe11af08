"""Quantization benchmark: every scheme of `quantize` on one model, measured like the tool's report.

`python bench/quantize.py [--model DIR] [--schemes W8A8 W4A16 FP8_DYNAMIC]` quantizes into a temporary
model store (nothing is registered in the server's), measures the base and each checkpoint on a
temporary engine, prints a table and writes `bench/results/quantize-<device>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlite_utils

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_llm import default_model
from mcp_llm.core.db import migrate
from mcp_llm.core.quantize import SCHEMES, quantize
from mcp_llm.core.registry.models import Registry
from mcp_llm.core.schemas import QuantizeReport
from mcp_llm.settings import Settings

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.quantize")


async def run(model: Path, schemes: list[str], settings: Settings) -> list[QuantizeReport]:
    reports = []
    with tempfile.TemporaryDirectory(prefix="mcp-llm-qbench-") as tmp:
        db = sqlite_utils.Database(Path(tmp) / "bench.db")
        migrate(db)
        registry = Registry(db, Path(tmp) / "models")
        registry.store.mkdir()

        async def progress(done: float, total: float | None, message: str) -> None:
            log.info("%s", message)

        for scheme in schemes:
            log.info("quantizing %s to %s", model.name, scheme)
            reports.append(await quantize(settings, registry, (model.name, str(model)), scheme, None, None, progress))
    return reports


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f}"


def format_table(reports: list[QuantizeReport]) -> str:
    first = reports[0]
    rows = [
        "| scheme | disk MB | tensor MB | perplexity | Δ ppl | output tok/s | vLLM kernel | weights | quantize s |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
        f"| base ({first.base_model}) | {_mb(first.disk_bytes_before)} | {_mb(first.param_bytes_before)} | "
        f"{first.perplexity_before:.2f} | | {first.tokens_per_s_before:.1f} | (unquantized) | | |",
    ]
    for r in reports:
        kernels = ", ".join(sorted(set(r.kernels.values()))) or "(not servable here)"
        measured = (
            f"{r.perplexity_after:.2f} | {r.perplexity_change_pct:+.1f} % | {r.tokens_per_s_after:.1f}"
            if r.servable_here
            else "- | - | -"
        )
        rows.append(
            f"| {r.scheme} | {_mb(r.disk_bytes_after)} | {_mb(r.param_bytes_after)} | {measured} | {kernels} | "
            f"{r.strategy} | {r.quantize_seconds:.1f} |"
        )
    answers = [f"  base: {first.outputs[0].before!r}", *(f"  {r.scheme}: {r.outputs[0].after!r}" for r in reports)]
    return "\n".join(["", *rows, "", f"Answers to {first.outputs[0].prompt!r}:", *answers])


def machine() -> dict[str, Any]:
    import psutil

    return {"machine": platform.machine(), "cpus": psutil.cpu_count(), "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/quantize.py", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="Checkpoint folder (default: the bundled model).")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES))
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default: bench/results/quantize-*.json).")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    settings = Settings()
    model = args.model or default_model.prepare(settings.model_store)
    reports = asyncio.run(run(model, args.schemes, settings))
    device = "gpu" if any("CUDA" in k or "Marlin" in k for r in reports for k in r.kernels.values()) else "cpu"
    out = args.out or REPO / "bench" / "results" / f"quantize-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "reports": [r.model_dump() for r in reports]}, indent=2))
    print(format_table(reports))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
