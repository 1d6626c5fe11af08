"""CPU time our remote backend spends per request, against a stand-in vLLM that answers at once (no engine).

A local aiohttp server (its own process) plays vLLM's `/v1/completions`: streamed (one SSE event per token,
then usage) or one JSON answer with per-request metrics. `RemoteEngine.generate` runs R requests of T tokens,
C at a time, streamed and unstreamed; the figure is this process's CPU time per request (the event-loop work
a real deployment pays per call, apart from the MCP layer). Prints a line per mode and writes JSON.

    python bench/remote_probe.py [--requests 300] [--tokens 128] [--concurrency 32] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHUNK = {"id": "cmpl-p", "object": "text_completion", "model": "model", "choices": [{"index": 0, "text": " word"}]}


def usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": 130, "completion_tokens": n, "total_tokens": 130 + n}


async def completions(request: Any) -> Any:
    """The stand-in for vLLM's /v1/completions."""
    from aiohttp import web

    body = await request.json()
    n = body["max_tokens"]
    if not body.get("stream"):
        metrics = {"time_to_first_token_ms": 5.0, "queue_time_ms": 1.0, "mean_itl_ms": 7.0}
        choice = {"index": 0, "text": " word" * n, "finish_reason": "length"}
        return web.json_response({"id": "p", "choices": [choice], "usage": usage(n), "metrics": metrics})
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    event = b"data: " + json.dumps(CHUNK).encode() + b"\n\n"
    for i in range(n):
        await response.write(event)
        if i % 8 == 0:
            await asyncio.sleep(0)  # let other streams interleave, as a busy server's would
    await response.write(b"data: " + json.dumps({"id": "p", "choices": [], "usage": usage(n)}).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def measure(url: str, unstreamed: bool, args: argparse.Namespace) -> dict[str, Any]:
    """CPU milliseconds per request of RemoteEngine.generate against the stand-in."""
    import httpx

    from mcp_llm.engine.remote import RemoteEngine
    from mcp_llm.schemas import SamplingOptions
    from mcp_llm.settings import Settings

    settings = Settings(backend="openai", base_url=url)
    engine = RemoteEngine(settings, httpx.AsyncClient(base_url=url), {"id": "model", "max_model_len": 4096}, None)
    engine.server_timing = unstreamed
    options = SamplingOptions(max_tokens=args.tokens, temperature=0)
    gate = asyncio.Semaphore(args.concurrency)

    async def one(i: int) -> None:
        async with gate:
            await engine.generate([1] * 130, options, f"probe-{i}")

    await asyncio.gather(*(one(i) for i in range(10)))  # warm-up: connections open
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(args.requests)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await engine.shutdown(0)
    return {"mode": "unstreamed" if unstreamed else "streamed", "cpu_ms_per_request": cpu / args.requests * 1000}


def serve(port: int) -> None:
    """The stand-in vLLM, in its own process (its CPU time is not ours)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    import multiprocessing

    from bench.net import free_port

    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    try:
        for _ in range(100):  # until it listens
            try:
                await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        return [await measure(f"http://127.0.0.1:{port}", unstreamed, args) for unstreamed in (False, True)]
    finally:
        server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "remote_probe.json")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    for r in rows:
        print(f"{r['mode']:<11} {r['cpu_ms_per_request']:.2f} ms CPU per request of {args.tokens} tokens")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
