"""CPU time our remote backend spends per request, against a stand-in vLLM that answers at once (no engine).

A local aiohttp server (its own process) plays vLLM's `/v1/completions`: streamed (one SSE event per token,
then usage) or one JSON answer with per-request metrics. `RemoteEngine.generate` runs R requests of T tokens,
C at a time, streamed and unstreamed; the figure is this process's CPU time per request (the event-loop work
a real deployment pays per call, apart from the MCP layer). Prints a line per mode and writes JSON.

    python bench/remote_probe.py [--requests 300] [--tokens 128] [--concurrency 32] [--out FILE]

`--through-server`: also our whole server (`server.py --transport http --backend openai` in front of the stand-in,
unstreamed): C MCP clients over HTTP make R `generate` calls; calls/s and the server process's CPU time per call
(MCP, HTTP, tokenization, the request, recording: everything but an engine). `--profile FILE` records it with
py-spy meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def through_server(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Our HTTP server in remote mode in front of the stand-in: calls/s and its CPU time per `generate` call."""
    import subprocess
    import tempfile

    from bench.bench import make_prompts
    from bench.net import free_port, wait_healthy
    from bench.peers import ours_http

    port = free_port()
    log = args.out.with_suffix(".server.log")
    with tempfile.TemporaryDirectory(prefix="mcp-llm-probe-") as data_dir:
        cmd = [sys.executable, str(REPO / "server.py"), "--transport", "http", "--port", str(port), "--backend"]
        cmd += ["openai", "--base-url", url, "--data-dir", data_dir, "--max-inflight-per-client=4096"]
        server = subprocess.Popen(cmd, stderr=log.open("w"), cwd=REPO)
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/health", server, log)
            mcp_url = f"http://127.0.0.1:{port}/mcp"
            prompts = make_prompts(args.requests)
            await ours_http(mcp_url, prompts[:32], args.tokens, args.concurrency)  # warm-up
            profiler = None
            if args.profile:
                spy = ["py-spy", "record", "--pid", str(server.pid), "--rate", "200", "--format", "raw"]
                profiler = subprocess.Popen([*spy, "--duration", "10", "-o", str(args.profile)])
            cpu = process_cpu_s(server.pid)
            figures = await ours_http(mcp_url, prompts, args.tokens, args.concurrency)
            cpu = process_cpu_s(server.pid) - cpu
            if profiler is not None:
                profiler.wait()
        finally:
            server.terminate()
            server.wait()
    return {
        "mode": "through our HTTP server",
        "calls_per_s": args.requests / figures["wall_s"],
        "server_cpu_ms_per_call": cpu / args.requests * 1000,
        "errors": figures["errors"],
    }


def serve(port: int, tokenizer: str) -> None:
    """The stand-in vLLM, in its own process (its CPU time is not ours); `/v1/models` names `tokenizer` as the
    served model's root, so our server loads a real tokenizer."""
    from aiohttp import web

    async def models(request: Any) -> Any:
        return web.json_response({"data": [{"id": "model", "root": tokenizer, "max_model_len": 4096}]})

    async def metrics(request: Any) -> Any:
        return web.Response(text="vllm:num_requests_running 0\n")

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    import multiprocessing

    from bench.bench import default_model
    from bench.net import free_port

    port = free_port()
    tokenizer = str(args.tokenizer or default_model())
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(port, tokenizer), daemon=True)
    server.start()
    try:
        for _ in range(100):  # until it listens
            try:
                await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        rows = [await measure(url, unstreamed, args) for unstreamed in (False, True)]
        return rows + ([await through_server(url, args)] if args.through_server else [])
    finally:
        server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the prepared SmolLM2)")
    parser.add_argument("--through-server", action="store_true", help="also through our HTTP server (see above)")
    parser.add_argument("--profile", type=Path, default=None, help="with --through-server: py-spy raw output")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "remote_probe.json")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    for r in rows:
        if "cpu_ms_per_request" in r:
            print(f"{r['mode']:<11} {r['cpu_ms_per_request']:.2f} ms CPU per request of {args.tokens} tokens")
        else:
            cpu = r["server_cpu_ms_per_call"]
            print(f"{r['mode']}: {r['calls_per_s']:.0f} calls/s, {cpu:.2f} ms server CPU per call")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
