"""Backend comparison: the same workload through the in-process engine and through a vLLM OpenAI server on
loopback (`--backend openai`), and straight at that server without us, to show where the remote path's cost
goes. Prints a table and writes JSON. Usage: python bench/backends.py [--prompts 64 --max-tokens 64 --concurrency 16]

Stages, run one after another on one machine:
  local-generate  `generate` over an in-memory MCP client, in-process AsyncLLM, `concurrency` calls at once
  local-batch     one `batch` call holding every prompt (in-process)
  direct-http     the same token ids streamed at the vLLM server with httpx: vLLM's API server, no MCP, no us
  remote-generate `generate` as in local-generate, with the remote backend forwarding to that server
  remote-batch    `batch` with the remote backend
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench import REPO, chat, log, machine_info, make_prompts, percentiles

CPU_ARGS = ("--enforce-eager", "--dtype", "float32", "--max-model-len", "2048")


async def mcp_stages(settings: Any, prompts: list[str], max_tokens: int, concurrency: int, prefix: str) -> dict:
    """`generate` at `concurrency` and one `batch`, through a real MCP client, on the backend `settings` names."""
    from mcp import Client

    from mcp_llm.core.services import open_services
    from mcp_llm.server.app import create_app

    sampling = {"max_tokens": max_tokens, "ignore_eos": True, "temperature": 0}
    async with open_services(settings) as svc, Client(create_app(settings, shared=svc)) as client:
        await client.call_tool("generate", {"messages": chat("warm up"), "max_tokens": 4})
        gate = asyncio.Semaphore(concurrency)

        async def one(text: str) -> dict:
            async with gate:
                started = time.perf_counter()
                result = await client.call_tool("generate", {"messages": chat(text), **sampling})
                return {"e2e_ms": (time.perf_counter() - started) * 1000, **result.structured_content}

        started = time.perf_counter()
        done = await asyncio.gather(*(one(p) for p in prompts))
        generate = figures(done, time.perf_counter() - started)
        started = time.perf_counter()
        result = await client.call_tool("batch", {"messages": [chat(p) for p in prompts], **sampling})
        wall = time.perf_counter() - started
        tokens = sum(r["usage"]["completion_tokens"] for r in result.structured_content["results"])
        batch = {"requests": len(prompts), "output_tokens": tokens, "wall_s": wall, "tok_per_s": tokens / wall}
        ids = [svc.engine.tokenize_chat([_message(p)]) for p in prompts]
    return {f"{prefix}-generate": generate, f"{prefix}-batch": batch, "_token_ids": ids}


def _message(text: str) -> Any:
    from mcp_llm.schemas import ChatMessage

    return ChatMessage(role="user", content=text)


async def direct_stage(url: str, name: str, token_ids: list[list[int]], max_tokens: int, concurrency: int) -> dict:
    """Stream the same token ids at the vLLM server with httpx, `concurrency` at once: the path without us."""
    import httpx

    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=None)) as http:

        async def one(ids: list[int]) -> dict:
            body = {"model": name, "prompt": ids, "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0}
            body |= {"stream": True, "stream_options": {"include_usage": True}}
            async with gate:
                started, first, usage = time.perf_counter(), None, {}
                async with http.stream("POST", "/v1/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: {"):
                            chunk = json.loads(line[6:])
                            first = first or time.perf_counter()
                            usage = chunk.get("usage") or usage
                end = time.perf_counter()
                return {
                    "e2e_ms": (end - started) * 1000,
                    "usage": usage,
                    "timing": {"ttft_ms": (first - started) * 1000 if first else None},
                }

        started = time.perf_counter()
        done = await asyncio.gather(*(one(ids) for ids in token_ids))
    return figures(done, time.perf_counter() - started)


def figures(done: list[dict], wall_s: float) -> dict:
    tokens = sum(r["usage"]["completion_tokens"] for r in done)
    return {
        "requests": len(done),
        "output_tokens": tokens,
        "wall_s": wall_s,
        "tok_per_s": tokens / wall_s,
        "e2e_ms": percentiles([r["e2e_ms"] for r in done]),
        "ttft_ms": percentiles([r["timing"]["ttft_ms"] for r in done]),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_table(stages: dict[str, dict], ratios: dict[str, float]) -> str:
    lines = [
        f"{'stage':<16} {'requests':>8} {'tokens':>7} {'wall s':>7} {'tok/s':>7} "
        f"{'e2e p50 ms':>11} {'ttft p50 ms':>12}",
    ]
    for name, r in stages.items():
        e2e = (r.get("e2e_ms") or {}).get("p50")
        ttft = (r.get("ttft_ms") or {}).get("p50")
        lines.append(
            f"{name:<16} {r['requests']:>8} {r['output_tokens']:>7} {r['wall_s']:>7.1f} {r['tok_per_s']:>7.1f} "
            f"{_ms(e2e):>11} {_ms(ttft):>12}"
        )
    lines += [f"{name}: {value:.2f}" for name, value in ratios.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from bench.vllm_server import VllmServer
    from mcp_llm import default_model
    from mcp_llm.settings import Settings

    parser = argparse.ArgumentParser(prog="bench/backends.py", description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    model_dir = default_model.ensure_prepared(Settings().model_store)
    prompts = make_prompts(args.prompts)
    shape = (prompts, args.max_tokens, args.concurrency)
    with tempfile.TemporaryDirectory(prefix="mcp-llm-backends-") as tmp:
        log("in-process backend")
        local = Settings(data_dir=Path(tmp) / "local", models_dir=Settings().model_store)
        stages = asyncio.run(mcp_stages(local, *shape, "local"))
        token_ids = stages.pop("_token_ids")
        log("vLLM OpenAI server on loopback")
        server = VllmServer(str(model_dir), default_model.MODEL_NAME, args.port, Path(tmp) / "vllm.log", *CPU_ARGS)
        server.start()
        try:
            stages["direct-http"] = asyncio.run(
                direct_stage(server.url, default_model.MODEL_NAME, token_ids, args.max_tokens, args.concurrency)
            )
            remote = Settings(backend="openai", base_url=server.url, data_dir=Path(tmp) / "remote")
            remote_stages = asyncio.run(mcp_stages(remote, *shape, "remote"))
            remote_stages.pop("_token_ids")
            stages |= remote_stages
        finally:
            server.stop()
    rate = {name: r["tok_per_s"] for name, r in stages.items()}
    p50 = {name: (r.get("e2e_ms") or {}).get("p50") for name, r in stages.items()}
    ratios = {
        "remote-generate / local-generate (tok/s)": rate["remote-generate"] / rate["local-generate"],
        "remote-batch / local-batch (tok/s)": rate["remote-batch"] / rate["local-batch"],
        "direct-http / local-generate (tok/s): vLLM's API server": rate["direct-http"] / rate["local-generate"],
        "remote-generate / direct-http (tok/s): our remote path": rate["remote-generate"] / rate["direct-http"],
        "remote-generate minus direct-http, e2e p50 (ms)": p50["remote-generate"] - p50["direct-http"],
    }
    report = {
        "date": datetime.now(UTC).isoformat(),
        "machine": machine_info(model_dir),
        "workload": {"prompts": args.prompts, "max_tokens": args.max_tokens, "concurrency": args.concurrency},
        "stages": stages,
        "ratios": ratios,
        "median_e2e_ms": statistics.median(v for v in p50.values() if v is not None),
    }
    out = args.out or REPO / "bench" / "results" / f"backends-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(format_table(stages, ratios))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
