"""On a multi-GPU machine: the same `batch` workload through our server's in-process engine with vLLM's
parallelism set by our settings (`--tensor-parallel-size`, `--data-parallel-size`), GPU use sampled with
nvidia-smi during the run. Usage: python bench/gpu/parallel.py LAYOUT [LAYOUT ...] --out FILE
LAYOUT is tp1, tp2 or dp2. Model: .gpu/model8b (Llama-3-8B shapes, dummy weights)."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

LAYOUTS = {
    "tp1": {},
    "tp2": {"tensor_parallel_size": 2},
    # vLLM's custom all-reduce (CUDA IPC between the GPUs) hit cudaErrorIllegalAddress on the lent machine
    "tp2-nccl": {"tensor_parallel_size": 2, "disable_custom_all_reduce": True},
    "tp2-nccl-eager": {"tensor_parallel_size": 2, "disable_custom_all_reduce": True, "enforce_eager": True},
    "dp2": {"data_parallel_size": 2},
}


def gpu_sampler(out: Path) -> subprocess.Popen:
    """nvidia-smi every 500 ms: per-GPU utilization and memory, CSV."""
    query = "--query-gpu=timestamp,index,utilization.gpu,memory.used"
    return subprocess.Popen(["nvidia-smi", query, "--format=csv,noheader,nounits", "-lms", "500"], stdout=out.open("w"))


def busy_share(samples: Path) -> dict[str, float]:
    """Mean utilization per GPU over the samples taken while the batch ran."""
    rows = [line.split(", ") for line in samples.read_text().splitlines() if line.count(",") == 3]
    per_gpu: dict[str, list[float]] = {}
    for _stamp, index, util, _mem in rows:
        per_gpu.setdefault(index, []).append(float(util))
    return {index: round(sum(v) / len(v), 1) for index, v in per_gpu.items() if v}


async def run_layout(layout: str, prompts: list[str], max_tokens: int, out_dir: Path) -> dict:
    from mcp import Client

    from mcp_llm.core.services import open_services
    from mcp_llm.server.app import create_app
    from mcp_llm.settings import Settings

    settings = Settings(
        model=str(REPO / ".gpu" / "model8b"),
        load_format="dummy",
        dtype="bfloat16",
        gpu_memory_utilization=0.85,
        data_dir=Path(tempfile.mkdtemp()),
        **LAYOUTS[layout],
    )
    started_engine = time.perf_counter()
    async with open_services(settings) as svc, Client(create_app(settings, shared=svc)) as client:
        start_s = time.perf_counter() - started_engine
        warm = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        await client.call_tool("generate", warm)
        sampler = gpu_sampler(out_dir / f"{layout}-gpus.csv")
        started = time.perf_counter()
        body = {"prompts": prompts, "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0}
        result = await client.call_tool("batch", body)
        wall = time.perf_counter() - started
        sampler.terminate()
        sampler.wait()
        job = result.structured_content["job"]
        tokens = sum(r["usage"]["completion_tokens"] for r in result.structured_content["results"])
        config = svc.engine.config().parallelism
    return {
        "layout": layout,
        "parallelism": config,
        "engine_start_s": round(start_s, 1),
        "requests": job["completed"],
        "failed": job["failed"],
        "output_tokens": tokens,
        "wall_s": round(wall, 2),
        "output_tok_per_s": round(tokens / wall, 1),
        "gpu_util_mean": busy_share(out_dir / f"{layout}-gpus.csv"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("layouts", nargs="+", choices=sorted(LAYOUTS))
    parser.add_argument("--prompts", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    prompts = [
        f"Request {i}: write a long story about the number {i} and its friends." * 4 for i in range(args.prompts)
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for layout in args.layouts:
        results.append(asyncio.run(run_layout(layout, prompts, args.max_tokens, args.out.parent)))
        print(json.dumps(results[-1]), flush=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
