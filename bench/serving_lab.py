"""Serving-lab benchmarks, measured by our own `benchmark` tool through a real MCP client (in-process app):

  speculative-copy  ngram speculative decoding off/on, prompts that ask to copy a list (draft tokens hit)
  speculative-free  the same on free writing (drafts rarely hit: the cost side of the trade-off)
  prefix-cache      80% of each prompt is one shared system prompt: prefix caching on/off
  tenants           the same workload from 1 tenant and from 4 tenants with per-tenant cache salts

Prints each run's table, writes the tool's PNG charts and one JSON to --out.
Usage: python bench/serving_lab.py [--out docs/serving-lab] [--only prefix-cache,tenants]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench import REPO, log, machine_info

COPY = "Copy this list exactly, line by line:\n" + "\n".join(
    f"item {i}: the quick brown fox jumps over the lazy dog {i}" for i in range(12)
)
FREE = ["Write a short story about a lighthouse keeper.", "Describe a busy market in the morning."]
SPECULATIVE = [{"name": "no speculation"}, {"name": "ngram", "speculative": "ngram"}]


def runs() -> dict[str, dict[str, Any]]:
    """Each run's `benchmark` arguments."""
    out = {"requests": 8, "kind": "prompts", "output_tokens": {"min": 128, "max": 128}, "ignore_eos": True}
    shared = {
        "requests": 16,
        "prompt_tokens": {"min": 640, "max": 640},
        "output_tokens": {"min": 16, "max": 16},
        "shared_prefix_fraction": 0.8,
    }
    return {
        "speculative-copy": {
            "workload": out | {"prompts": [COPY]},
            "concurrency": [1, 4],
            "variants": SPECULATIVE[1:],
            "include_current": True,
        },
        "speculative-free": {
            "workload": out | {"prompts": FREE},
            "concurrency": [1, 4],
            "variants": SPECULATIVE[1:],
            "include_current": True,
        },
        "prefix-cache": {
            "workload": shared,
            "concurrency": [1, 4],
            "variants": [{"name": "prefix caching off", "enable_prefix_caching": False}],
            "include_current": True,
        },
        "tenants": {"workload": shared | {"tenants": 4, "seed": 2}, "concurrency": [1, 4]},
        "tenants-one": {"workload": shared | {"tenants": 1, "seed": 3}, "concurrency": [1, 4]},
    }


async def run_all(names: list[str], out: Path) -> dict[str, Any]:
    from mcp import Client

    from mcp_llm.core.services import open_services
    from mcp_llm.server.app import create_app
    from mcp_llm.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="serving-lab-"))
    # HTTP settings: per-client cache salts apply (stdio is one tenant); the engine as the tests run it
    settings = Settings(
        transport="http",
        data_dir=data,
        models_dir=Settings().model_store,
        max_model_len=2048,
        enforce_eager=True,
        benchmark_budget_s=3600,
    )
    results: dict[str, Any] = {}
    async with open_services(settings) as svc, Client(create_app(settings, shared=svc)) as client:
        for name in names:
            arguments = runs()[name] | {"confirm": True}
            log(f"serving lab: {name}")
            result = await client.call_tool("benchmark", arguments)
            if result.is_error:
                raise SystemExit(f"{name}: {result.content[0].text}")
            for block in result.content:
                if block.type == "image":
                    (out / f"{name}.png").write_bytes(base64.b64decode(block.data))
                elif block.type == "text":
                    print(f"\n## {name}\n{block.text}\n", flush=True)
            results[name] = result.structured_content
            results[name]["prefix_cache_hits_after"] = svc.engine.stats().prefix_cache_hits
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "serving-lab")
    parser.add_argument("--only", default=",".join(runs()), help="comma-separated runs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from mcp_llm import default_model
    from mcp_llm.settings import Settings

    results = asyncio.run(run_all(args.only.split(","), args.out))
    body = {"machine": machine_info(default_model.ensure_prepared(Settings().model_store)), "runs": results}
    (args.out / "serving-lab.json").write_text(json.dumps(body, indent=2))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
