"""Side by side on one engine configuration: raw vLLM, the peer MCP server, and ours (remote and in-process).

Phases (`--phases remote,inproc`), each on the workload of bench.py (chat prompts padded to `--prompt-tokens`,
`--max-tokens` output tokens, `ignore_eos`, temperature 0):

  remote   one `vllm serve` (vLLM's OpenAI server, started here with the engine flags), then per concurrency C:
           raw chat completions at C in flight, each MCP server in front of it (R `tool` calls, C in flight, one
           stdio session each) with a raw run after every MCP run (bracketed); then K sequential one-token round
           trips per row. Output tokens come from vLLM's own counter (`vllm:generation_tokens_total`).
  inproc   a raw in-process `AsyncLLM` (here) and our server over Streamable HTTP (a subprocess, its own engine):
           C HTTP clients calling `generate`, bracketed by raw `AsyncLLM` runs at C in flight; one-token round
           trips over HTTP (round trip minus the engine's own time = per-call overhead); with `--stdio`, our
           server over stdio too: `batch` of all R (results read back, paged ones included) against raw
           `AsyncLLM` with all R at once, and the one-token overhead over stdio. Tokens: vLLM's counter (our
           server's `/metrics`; the raw engine's Prometheus registry here). `--front-ends 1,4` runs the HTTP rows
           once per front-end count (`--api-server-count`; tokens then from the answered calls, `ignore_eos`).

MCP servers of the remote phase: `ours` (this checkout's `server.py --backend openai`), `--ours-before DIR` (another
checkout, for before/after in one lease) and `--peer-cmd` (e.g. micytao's `vllm-mcp-server`, installed in its own
environment and started as its README says: `VLLM_BASE_URL`, `VLLM_MODEL`). `--profile CMD` runs CMD with `{pid}`
and `{name}` replaced during an extra, unmeasured run per MCP server (e.g. py-spy record).

Prints a table and writes JSON (`--out`). CPU: `python bench/peers.py` (SmolLM2, small workload); GPU:
`bench/gpu/peers_on_device.sh`. vLLM spawns processes: `main()` runs only under `__main__`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.bench import (  # noqa: E402 (after the path)
    CALL_TIMEOUT_S,
    batch_items,
    chat,
    chat_token_ids,
    default_model,
    device_roofline,
    engine_settings,
    log,
    make_prompts,
    pad_prompts,
    percentiles,
    server_env,
    server_flags,
    start_http_server,
    stop_server,
)
from bench.net import START_TIMEOUT_S, free_port, log_tail, wait_healthy  # noqa: E402

GEN_COUNTER = "vllm:generation_tokens_total"


# --------------------------------------------------------------------------- figures


def counter_total(metrics_text: str, name: str = GEN_COUNTER) -> float:
    """Sum of a Prometheus counter over its label sets (one per engine / model)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and not line.startswith(f"{name.removesuffix('_total')}_created"):
            total += float(line.rsplit(" ", 1)[-1])
    return total


async def read_counter(http: Any, url: str) -> float:
    """vLLM's output-token counter read from a `/metrics` URL."""
    response = await http.get(url, timeout=30)
    response.raise_for_status()
    return counter_total(response.text)


def row(name: str, phase: str, c: int | None, **figures: Any) -> dict[str, Any]:
    """One result row."""
    return {"name": name, "phase": phase, "c": c, "t": time.strftime("%H:%M:%S"), **figures}


def throughput(tokens: float, wall_s: float, latencies: list[float], errors: list[str]) -> dict[str, Any]:
    """Figures of one throughput run."""
    return {
        "wall_s": round(wall_s, 3),
        "tokens": int(tokens),
        "tok_s": round(tokens / wall_s, 1) if wall_s else None,
        "call_ms": percentiles(latencies),
        "errors": len(errors),
        "error_examples": errors[:3],
    }


async def gated(items: list[Any], c: int, fn: Callable[[int, Any], Awaitable[Any]]) -> list[Any]:
    """fn over items with at most c in flight; exceptions returned in place."""
    gate = asyncio.Semaphore(c)

    async def one(i: int, x: Any) -> Any:
        async with gate:
            return await fn(i, x)

    return await asyncio.gather(*(one(i, x) for i, x in enumerate(items)), return_exceptions=True)


def errors_of(results: list[Any]) -> list[str]:
    return [repr(r)[:300] for r in results if isinstance(r, BaseException)]


# --------------------------------------------------------------------------- raw vLLM server


def start_vllm_server(args: argparse.Namespace, port: int, log_path: Path) -> subprocess.Popen:
    """vLLM's OpenAI server (what `vllm serve` starts) with the engine flags of every row."""
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(args.model)]
    cmd += ["--served-model-name", "model", "--host", "127.0.0.1", "--port", str(port)]
    for name, value in engine_settings(args).items():
        if isinstance(value, bool):
            cmd += [f"--{name.replace('_', '-')}"] if value else []
        else:
            cmd += [f"--{name.replace('_', '-')}", str(value)]
    cmd += [flag for extra in args.vllm_flag for flag in shlex.split(extra)]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    log(f"remote: starting vLLM's server: {shlex.join(cmd)}")
    with log_path.open("w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)


async def wait_listing(http: Any, url: str, proc: subprocess.Popen, log_path: Path) -> None:
    """Wait until vLLM's server lists its model; fail if it exits or takes longer than START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM's server exited ({proc.returncode}):\n{log_tail(log_path)}")
        try:
            if (await http.get(f"{url}/v1/models", timeout=2)).status_code == 200:
                return
        except Exception:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"vLLM's server not up after {START_TIMEOUT_S:.0f} s:\n{log_tail(log_path)}")


async def raw_chat(http: Any, url: str, prompts: list[str], max_tokens: int, c: int) -> dict[str, Any]:
    """Non-streamed chat completions at c in flight, sent with aiohttp (at 256 in flight httpx's own pool
    was the bottleneck: 6-7k tok/s where the MCP servers in front of the same vLLM did 20k)."""
    import aiohttp

    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def one(i: int, text: str) -> int:
            body = {"model": "model", "messages": chat(text), "max_tokens": max_tokens, "temperature": 0}
            t0 = time.perf_counter()
            async with session.post(f"{url}/v1/chat/completions", json=body | {"ignore_eos": True}) as response:
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:200]}")
                answer = await response.json()
            latencies.append((time.perf_counter() - t0) * 1000)
            return answer["usage"]["completion_tokens"]

        before = await read_counter(http, f"{url}/metrics")
        t0 = time.perf_counter()
        results = await gated(prompts, c, one)
        wall = time.perf_counter() - t0
    return throughput(await read_counter(http, f"{url}/metrics") - before, wall, latencies, errors_of(results))


async def raw_one_token(http: Any, url: str, prompts: list[str], k: int) -> dict[str, Any]:
    """K sequential one-token chat completions (after one warm-up): the round trip of the bare server."""
    rtt = []
    for i in range(k + 1):
        body = {"model": "model", "messages": chat(prompts[i % len(prompts)]), "max_tokens": 1, "temperature": 0}
        t0 = time.perf_counter()
        (await http.post(f"{url}/v1/chat/completions", json=body)).raise_for_status()
        if i:
            rtt.append((time.perf_counter() - t0) * 1000)
    return {"one_token_rtt_ms": percentiles(rtt)}


# --------------------------------------------------------------------------- MCP clients


def tool_args(style: str, text: str, max_tokens: int) -> dict[str, Any]:
    """Arguments of one call: ours (`generate`) takes ignore_eos; the peer's `vllm_chat` has no such argument."""
    args = {"messages": chat(text), "max_tokens": max_tokens, "temperature": 0}
    return args if style == "peer" else args | {"ignore_eos": True}


def result_text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def failed(result: Any) -> bool:
    return bool(result.is_error) or result_text(result).startswith("Error")


class McpServer:
    """One MCP server in front of the remote vLLM: a stdio session to `cmd`, called with `tool`."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], tool: str, style: str, cwd: str) -> None:
        self.name, self.cmd, self.env, self.tool, self.style, self.cwd = name, cmd, env, tool, style, cwd
        self.client: Any = None
        self.pid: int | None = None

    async def open(self, stack: AsyncExitStack, log_dir: Path) -> dict[str, Any]:
        """Start it and list its tools; one warm-up call."""
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=self.cmd[0], args=self.cmd[1:], env={**server_env(), **self.env}, cwd=self.cwd
        )
        errlog = stack.enter_context((log_dir / f"peers-{self.name}.stderr.log").open("w"))
        started = time.perf_counter()
        self.client = await stack.enter_async_context(
            Client(stdio_client(params, errlog=errlog), read_timeout_seconds=START_TIMEOUT_S)
        )
        tools = {t.name for t in (await self.client.list_tools()).tools}
        if self.tool not in tools:
            raise RuntimeError(f"{self.name} has no tool {self.tool!r}: {sorted(tools)}")
        warm = await self.call("warm-up", 4)
        self.pid = find_pid(self.cmd)
        return {"ready_s": round(time.perf_counter() - started, 2), "warmup": result_text(warm)[:300]}

    async def call(self, text: str, max_tokens: int) -> Any:
        return await self.client.call_tool(
            self.tool, tool_args(self.style, text, max_tokens), read_timeout_seconds=CALL_TIMEOUT_S
        )

    async def run(self, http: Any, url: str, prompts: list[str], max_tokens: int, c: int) -> dict[str, Any]:
        """R calls at c in flight; tokens from vLLM's counter."""
        latencies: list[float] = []

        async def one(i: int, text: str) -> None:
            t0 = time.perf_counter()
            result = await self.call(text, max_tokens)
            latencies.append((time.perf_counter() - t0) * 1000)
            if failed(result):
                raise RuntimeError(result_text(result)[:300])

        before = await read_counter(http, f"{url}/metrics")
        t0 = time.perf_counter()
        results = await gated(prompts, c, one)
        wall = time.perf_counter() - t0
        return throughput(await read_counter(http, f"{url}/metrics") - before, wall, latencies, errors_of(results))

    async def one_token(self, prompts: list[str], k: int) -> dict[str, Any]:
        """K sequential one-token calls: the round trip through this server."""
        rtt, errors = [], 0
        for i in range(k + 1):
            t0 = time.perf_counter()
            result = await self.call(prompts[i % len(prompts)], 1)
            if i:
                rtt.append((time.perf_counter() - t0) * 1000)
            errors += failed(result)
        return {"one_token_rtt_ms": percentiles(rtt), "errors": errors}


def find_pid(cmd: list[str]) -> int | None:
    """The pid of the newest process whose command line ends with cmd (the stdio server we started)."""
    wanted = " ".join(cmd[1:]) or cmd[0]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if line.endswith(wanted) and str(os.getpid()) != entry.name:
                found.append(int(entry.name))
    return max(found) if found else None


def profile_start(template: str | None, pid: int | None, name: str) -> subprocess.Popen | None:
    """Start the profiler command on a server's pid (`{pid}`, `{name}`, and `{client}`: this process)."""
    if not template or pid is None:
        return None
    return subprocess.Popen(template.format(pid=pid, name=name, client=os.getpid()), shell=True)


def ours_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Our servers' own settings for the run: one benchmark client may keep every request of a row in flight
    (the default per-client bound, 128, would answer busy at 256)."""
    return {"max_inflight_per_client": args.ours_inflight, "max_inflight_total": args.ours_inflight}


def ours_flags(args: argparse.Namespace) -> list[str]:
    """ours_settings as command-line flags, then --ours-flag."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in ours_settings(args).items()]
    return flags + args.ours_flag


def mcp_servers(args: argparse.Namespace, vllm_url: str, data_root: Path) -> list[McpServer]:
    """The MCP servers in front of the remote vLLM, in the order they run."""
    servers = []
    if args.peer_cmd:
        env = {"VLLM_BASE_URL": vllm_url, "VLLM_MODEL": "model"} | dict(e.split("=", 1) for e in args.peer_env)
        cmd = shlex.split(args.peer_cmd)
        cmd[0] = shutil.which(cmd[0]) or cmd[0]  # run from a scratch folder
        servers.append(McpServer("peer", cmd, env, "vllm_chat", "peer", str(data_root)))
    checkouts = [("ours", REPO, "")] + [(n, REPO, f) for n, f in (v.split("=", 1) for v in args.ours_variant)]
    checkouts += [("ours-before", Path(args.ours_before).resolve(), "")] if args.ours_before else []
    for name, checkout, flags in checkouts:
        cmd = [sys.executable, str(checkout / "server.py"), "--backend", "openai", "--base-url", vllm_url]
        cmd += ["--data-dir", str(data_root / name), *ours_flags(args), *shlex.split(flags)]
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))}
        servers.append(McpServer(name, cmd, env, "generate", "ours", str(checkout)))
    return servers


async def remote_phase(args: argparse.Namespace, prompts: list[str], out_dir: Path) -> list[dict[str, Any]]:
    """vLLM's server alone, then each MCP server in front of it, bracketed by raw runs."""
    import httpx

    rows: list[dict[str, Any]] = []
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_vllm_server(args, port, out_dir / "peers-vllm-serve.log")
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=1024)
    try:
        async with (
            httpx.AsyncClient(timeout=CALL_TIMEOUT_S, limits=limits) as http,
            AsyncExitStack() as stack,
        ):
            started = time.perf_counter()
            await wait_listing(http, url, proc, out_dir / "peers-vllm-serve.log")
            rows.append(emit1(row("vllm serve start", "remote", None, ready_s=round(time.perf_counter() - started, 1))))
            await raw_chat(http, url, prompts[:16], 8, 16)  # warm-up
            with tempfile.TemporaryDirectory(prefix="mcp-llm-peers-") as data_root:
                servers = []
                for server in mcp_servers(args, url, Path(data_root)):
                    try:
                        opened = await server.open(stack, out_dir)
                        rows.append(emit1(row(f"{server.name} start", "remote", None, **opened)))
                        servers.append(server)
                    except Exception as exc:
                        traceback.print_exc()
                        rows.append(emit1(row(f"{server.name} start", "remote", None, failed=repr(exc)[:500])))
                for c in args.concurrency:
                    rows.append(
                        emit1(row("raw", "remote", c, **await raw_chat(http, url, prompts, args.max_tokens, c)))
                    )
                    for server in servers:
                        figures = await server.run(http, url, prompts, args.max_tokens, c)
                        rows.append(emit1(row(server.name, "remote", c, **figures)))
                        raw = await raw_chat(http, url, prompts, args.max_tokens, c)
                        rows.append(emit1(row("raw", "remote", c, **raw)))
                rows.append(emit1(row("raw 1-token", "remote", 1, **await raw_one_token(http, url, prompts, args.k))))
                for server in servers:
                    rows.append(
                        emit1(row(f"{server.name} 1-token", "remote", 1, **await server.one_token(prompts, args.k)))
                    )
                for server in [s for s in servers if s.name == "ours"] if args.profile else ():
                    profiler = profile_start(args.profile, server.pid, server.name)
                    figures = await server.run(http, url, prompts, args.max_tokens, args.concurrency[0])
                    rows.append(emit1(row(f"{server.name} (profiled)", "remote", args.concurrency[0], **figures)))
                    if profiler is not None:
                        profiler.wait()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return rows


# --------------------------------------------------------------------------- in-process


class RawEngine:
    """An in-process AsyncLLM: the same requests as our server makes (token ids, FINAL_ONLY)."""

    def __init__(self, args: argparse.Namespace, token_prompts: list[list[int]]) -> None:
        self.args, self.token_prompts, self.engine = args, token_prompts, None

    def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(model=str(self.args.model), **engine_settings(self.args))
        )

    async def one(self, ids: list[int], max_tokens: int) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=max_tokens, ignore_eos=True, temperature=0, output_kind=RequestOutputKind.FINAL_ONLY
        )
        final = None
        async for output in self.engine.generate({"prompt_token_ids": ids}, params, uuid.uuid4().hex):
            final = output
        return final

    async def run(self, c: int) -> dict[str, Any]:
        """All prompts at c in flight (c = 0: all at once)."""
        latencies: list[float] = []

        async def one(i: int, ids: list[int]) -> int:
            t0 = time.perf_counter()
            out = await self.one(ids, self.args.max_tokens)
            latencies.append((time.perf_counter() - t0) * 1000)
            return len(out.outputs[0].token_ids)

        before = raw_counter()
        t0 = time.perf_counter()
        results = await gated(self.token_prompts, c or len(self.token_prompts), one)
        wall = time.perf_counter() - t0
        counted = raw_counter() - before
        tokens = counted or sum(r for r in results if not isinstance(r, BaseException))
        return throughput(tokens, wall, latencies, errors_of(results)) | {"counter": bool(counted)}

    async def one_token(self, k: int) -> dict[str, Any]:
        """K sequential one-token requests: round trip, vLLM's own time (first-token latency), the rest."""
        rtt, engine_ms = [], []
        for i in range(k + 1):
            t0 = time.perf_counter()
            out = await self.one(self.token_prompts[i % len(self.token_prompts)], 1)
            if i:
                rtt.append((time.perf_counter() - t0) * 1000)
                engine_ms.append(out.metrics.first_token_latency * 1000 if out.metrics else None)
        overhead = [r - e for r, e in zip(rtt, engine_ms, strict=True) if e is not None]
        return {"one_token_rtt_ms": percentiles(rtt), "overhead_ms": percentiles(overhead)}


def raw_counter() -> float:
    """vLLM's output-token counter of the in-process engine (its Prometheus logger), 0 when not registered."""
    from prometheus_client import REGISTRY, generate_latest

    return counter_total(generate_latest(REGISTRY).decode())


async def http_clients(
    url: str, prompts: list[str], max_tokens: int, c: int, connected: Callable[[], Awaitable[Any]]
) -> tuple[list[float], list[str]]:
    """c MCP clients over Streamable HTTP calling `generate` until the prompts run out (bench.py's stage d),
    starting when `connected()` (awaited once all are connected) returns. Call latencies and errors."""
    from mcp import Client

    latencies: list[float] = []
    errors: list[str] = []
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(url, read_timeout_seconds=CALL_TIMEOUT_S)) for _ in range(c)]
        for client in clients:
            await client.list_tools()
        pending = list(prompts)[::-1]

        async def worker(client: Any) -> None:
            while pending:
                text = pending.pop()
                t0 = time.perf_counter()
                result = await client.call_tool("generate", tool_args("ours", text, max_tokens))
                latencies.append((time.perf_counter() - t0) * 1000)
                if failed(result):
                    errors.append(result_text(result)[:300])

        await connected()
        await asyncio.gather(*(worker(client) for client in clients))
    return latencies, errors


def client_process(url: str, prompts: list[str], max_tokens: int, c: int, barrier: Any, out: Any) -> None:
    """One process of HTTP clients (`--client-procs`): starts at the barrier; latencies and errors to `out`."""
    out.put(asyncio.run(http_clients(url, prompts, max_tokens, c, lambda: asyncio.to_thread(barrier.wait))))


async def ours_http(
    url: str, prompts: list[str], max_tokens: int, c: int, procs: int = 1, counted: bool = True
) -> dict[str, Any]:
    """c HTTP clients calling `generate`, in `procs` processes (the prompts dealt out among them); tokens from
    the server's vLLM counter (not `counted`: several front-ends, each with its own counter, so every answered
    call's `max_tokens`, which `ignore_eos` makes exact), wall time from the moment every client is connected."""
    import multiprocessing

    import httpx

    metrics = url.removesuffix("/mcp") + "/metrics"
    async with httpx.AsyncClient() as http:
        before = await read_counter(http, metrics)
        if procs <= 1:
            ready, go = asyncio.Event(), asyncio.Event()

            async def connected() -> None:
                ready.set()
                await go.wait()

            task = asyncio.ensure_future(http_clients(url, prompts, max_tokens, c, connected))
            await ready.wait()
            t0 = time.perf_counter()
            go.set()
            latencies, errors = await task
        else:
            ctx = multiprocessing.get_context("spawn")
            barrier, out = ctx.Barrier(procs + 1), ctx.Queue()
            share = [prompts[i::procs] for i in range(procs)]
            workers = [
                ctx.Process(target=client_process, args=(url, share[i], max_tokens, c // procs, barrier, out))
                for i in range(procs)
            ]
            for w in workers:
                w.start()
            await asyncio.to_thread(barrier.wait)
            t0 = time.perf_counter()
            parts = [await asyncio.to_thread(out.get) for _ in workers]
            latencies = [x for part in parts for x in part[0]]
            errors = [x for part in parts for x in part[1]]
            for w in workers:
                w.join()
        wall = time.perf_counter() - t0
        tokens = await read_counter(http, metrics) - before if counted else (len(prompts) - len(errors)) * max_tokens
        return throughput(tokens, wall, latencies, errors) | {"client_procs": procs}


async def ours_one_token(client: Any, prompts: list[str], k: int) -> dict[str, Any]:
    """K sequential `generate(max_tokens=1)` calls: round trip, the engine's time (timing.total_ms), the rest."""
    rtt, engine_ms = [], []
    for i in range(k + 1):
        t0 = time.perf_counter()
        result = await client.call_tool("generate", tool_args("ours", prompts[i % len(prompts)], 1))
        if i:
            rtt.append((time.perf_counter() - t0) * 1000)
            engine_ms.append((result.structured_content or {}).get("timing", {}).get("total_ms"))
    overhead = [r - e for r, e in zip(rtt, engine_ms, strict=True) if e is not None]
    return {"one_token_rtt_ms": percentiles(rtt), "overhead_ms": percentiles(overhead)}


async def ours_batch(client: Any, prompts: list[str], max_tokens: int) -> dict[str, Any]:
    """`batch` of all prompts with wait=True, its results read back (paged ones included)."""
    arguments = {"messages": [chat(t) for t in prompts], "max_tokens": max_tokens, "ignore_eos": True}
    t0 = time.perf_counter()
    answer = await client.call_tool("batch", arguments | {"temperature": 0, "wait": True})
    if failed(answer) or answer.structured_content is None:
        raise RuntimeError(result_text(answer)[:500])
    items = await batch_items(client, answer.structured_content)
    wall = time.perf_counter() - t0
    tokens = sum((item.get("usage") or {}).get("completion_tokens", 0) for item in items)
    return throughput(tokens, wall, [], [str(i["error"]) for i in items if i.get("error")]) | {"items": len(items)}


async def inproc_phase(args: argparse.Namespace, prompts: list[str], out_dir: Path) -> list[dict[str, Any]]:
    """Raw AsyncLLM here against our server over HTTP (and stdio), each with its own engine."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    raw = RawEngine(args, [chat_token_ids(tokenizer, t) for t in prompts])
    rows: list[dict[str, Any]] = []
    log("inproc: starting the raw AsyncLLM")
    started = time.perf_counter()
    raw.start()
    rows.append(emit1(row("raw AsyncLLM start", "inproc", None, ready_s=round(time.perf_counter() - started, 1))))
    await raw.one(raw.token_prompts[0], 4)
    with tempfile.TemporaryDirectory(prefix="mcp-llm-peers-") as data_dir:
        for n in args.front_ends if args.http else []:
            http_log = out_dir / ("peers-inproc-http.log" if n == 1 else f"peers-inproc-http-{n}fe.log")
            rows += await http_rows(args, prompts, raw, free_port(), http_log, Path(data_dir) / f"fe{n}", n)
        if args.stdio:
            rows += await stdio_rows(args, prompts, raw, out_dir, Path(data_dir))
    raw.engine.shutdown()
    return rows


async def http_rows(
    args: argparse.Namespace,
    prompts: list[str],
    raw: RawEngine,
    port: int,
    http_log: Path,
    data_dir: Path,
    front_ends: int = 1,
) -> list[dict[str, Any]]:
    """Our server over HTTP (`front_ends` processes over its engine: `--api-server-count`): `generate` clients at
    each concurrency between bracketing raw runs; one-token overhead; a profiled run when asked."""
    from mcp import Client

    rows: list[dict[str, Any]] = []
    settings = engine_settings(args) | ours_settings(args)
    if front_ends > 1:
        settings["api_server_count"] = front_ends
    ours = "ours" + (f" {front_ends} front-ends" if front_ends > 1 else "")
    proc = start_http_server(args.model, port, http_log, data_dir, settings)
    try:
        started = time.perf_counter()
        await wait_healthy(f"http://127.0.0.1:{port}/health", proc, http_log)
        rows.append(emit1(row(f"{ours} HTTP start", "inproc", None, ready_s=round(time.perf_counter() - started, 1))))
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url, read_timeout_seconds=CALL_TIMEOUT_S) as client:
            await client.call_tool("generate", tool_args("ours", prompts[0], 4))
            for c in args.concurrency:
                rows.append(emit1(row("raw AsyncLLM", "inproc", c, **await raw.run(c))))
                for procs in sorted({1, args.client_procs}):
                    figures = await ours_http(url, prompts, args.max_tokens, c, procs, counted=front_ends == 1)
                    name = f"{ours} generate HTTP" + (f" ({procs} client procs)" if procs > 1 else "")
                    rows.append(emit1(row(name, "inproc", c, **figures)))
                    rows.append(emit1(row("raw AsyncLLM", "inproc", c, **await raw.run(c))))
            rows.append(emit1(row("raw AsyncLLM 1-token", "inproc", 1, **await raw.one_token(args.k))))
            one_token = await ours_one_token(client, prompts, args.k)
            rows.append(emit1(row(f"{ours} HTTP 1-token", "inproc", 1, **one_token)))
            if args.profile:
                profiler = profile_start(args.profile, proc.pid, "inproc-http")
                figures = await ours_http(url, prompts, args.max_tokens, args.concurrency[0], counted=front_ends == 1)
                rows.append(emit1(row(f"{ours} generate HTTP (profiled)", "inproc", args.concurrency[0], **figures)))
                if profiler is not None:
                    profiler.wait()
    finally:
        stop_server(proc)
    return rows


async def stdio_rows(
    args: argparse.Namespace, prompts: list[str], raw: RawEngine, out_dir: Path, data_dir: Path
) -> list[dict[str, Any]]:
    """Our server over stdio: `batch` of all prompts against raw AsyncLLM all at once; one-token overhead."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    flags = server_flags(args.model, data_dir / "stdio", engine_settings(args) | ours_settings(args))
    params = StdioServerParameters(
        command=sys.executable, args=[str(REPO / "server.py"), *flags], env=server_env(), cwd=str(REPO)
    )
    rows = []
    with (out_dir / "peers-inproc-stdio.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=START_TIMEOUT_S) as client:
            await client.call_tool("generate", tool_args("ours", prompts[0], 4))
            await asyncio.sleep(2.5)  # the warm-up call is over: the batch runs alone (the window lends every seat)
            rows.append(emit1(row("raw AsyncLLM all at once", "inproc", 0, **await raw.run(0))))
            rows.append(
                emit1(row("ours batch stdio", "inproc", 0, **await ours_batch(client, prompts, args.max_tokens)))
            )
            rows.append(emit1(row("raw AsyncLLM all at once", "inproc", 0, **await raw.run(0))))
            rows.append(emit1(row("ours stdio 1-token", "inproc", 1, **await ours_one_token(client, prompts, args.k))))
            if args.profile:
                await asyncio.sleep(2.5)
                profiler = profile_start(args.profile, server_pid(), "inproc-stdio-batch")
                figures = await ours_batch(client, prompts, args.max_tokens)
                rows.append(emit1(row("ours batch stdio (profiled)", "inproc", 0, **figures)))
                if profiler is not None:
                    profiler.wait()
    return rows


def server_pid() -> int | None:
    """The pid of our stdio server (a child process of this one running server.py)."""
    import psutil

    children = psutil.Process().children(recursive=True)
    return next((p.pid for p in children if any("server.py" in part for part in p.cmdline())), None)


# --------------------------------------------------------------------------- report


ROWS_LOG: list[Path] = []  # where rows are appended as they are measured (a run cut short keeps them)


def emit1(r: dict[str, Any]) -> dict[str, Any]:
    """Log a row as it is measured (stderr and the rows log) and return it."""
    line = json.dumps(r)
    print(line, file=sys.stderr, flush=True)
    for path in ROWS_LOG:
        with path.open("a") as f:
            f.write(line + "\n")
    return r


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each MCP row's tok/s against the mean of the raw runs just before and after it (same phase and c)."""
    for i, r in enumerate(rows):
        if r.get("tok_s") is None or r["name"].startswith("raw"):
            continue
        near = [
            x["tok_s"]
            for x in (rows[i - 1] if i else None, rows[i + 1] if i + 1 < len(rows) else None)
            if x and x["name"].startswith("raw") and x["c"] == r["c"] and x.get("tok_s")
        ]
        r["vs_raw"] = round(r["tok_s"] / statistics.fmean(near), 3) if near else None
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The measured rows as a table (start rows left out)."""
    from tabulate import tabulate

    table = []
    for r in rows:
        if r["c"] is None:
            continue
        call = r.get("call_ms") or {}
        table.append(
            [
                r["phase"],
                r["name"],
                r["c"] or "all",
                _f(r.get("tok_s")),
                _f(r.get("vs_raw"), ".2f"),
                f"{_f(call.get('p50'), '.0f')}/{_f(call.get('p95'), '.0f')}",
                _f((r.get("one_token_rtt_ms") or {}).get("p50"), ".2f"),
                _f((r.get("overhead_ms") or {}).get("p50"), ".2f"),
                r.get("errors", ""),
            ]
        )
    head = ["phase", "row", "c", "tok/s", "vs raw", "call p50/p95 ms", "1-token p50 ms", "overhead p50 ms", "errors"]
    return tabulate(table, head, colalign=("left", "left") + ("right",) * 7)


def _f(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", default="remote,inproc", help="comma list of remote, inproc")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the prepared SmolLM2)")
    p.add_argument("--load-format", default=None, help="dummy: random weights (GPU runs)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.4, help="per engine (inproc runs two at once)")
    p.add_argument("--prompts", type=int, default=64, help="requests per run")
    p.add_argument("--prompt-tokens", type=int, default=0, help="pad chat prompts to at least this many tokens")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--concurrency", default="64,256", help="comma list of in-flight limits")
    p.add_argument("--k", type=int, default=30, help="sequential one-token calls per row")
    p.add_argument("--peer-cmd", default=None, help="the peer MCP server's command (stdio)")
    p.add_argument("--peer-env", action="append", default=[], help="NAME=VALUE for the peer (repeatable)")
    p.add_argument("--ours-before", default=None, help="another checkout of this project, run as `ours-before`")
    p.add_argument("--ours-flag", action="append", default=[], help="extra flag for our remote-mode servers")
    p.add_argument("--ours-inflight", type=int, default=1024, help="our servers' in-flight bounds (per client, total)")
    p.add_argument(
        "--ours-variant", action="append", default=[], help="NAME=FLAGS: one more remote-mode server of this checkout"
    )
    p.add_argument("--vllm-flag", action="append", default=[], help="extra flags for `vllm serve` (every row)")
    p.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="inproc: also run the HTTP clients spread over this many processes (independent agents)",
    )
    p.add_argument(
        "--front-ends",
        default="1",
        help="inproc: comma list of our HTTP server's front-end process counts (--api-server-count), one server each",
    )
    p.add_argument("--stdio", action="store_true", help="inproc: also our server over stdio (batch, overhead)")
    p.add_argument(
        "--http", action=argparse.BooleanOptionalAction, default=True, help="inproc: our server over HTTP (generate)"
    )
    p.add_argument(
        "--profile",
        default=None,
        help="command run during an extra run of each of our servers ({pid}, {name}, {client})",
    )
    p.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/peers-<UTC>.json)")
    args = p.parse_args(argv)
    args.model = args.model or default_model()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.front_ends = [int(n) for n in args.front_ends.split(",")]
    args.phases = args.phases.split(",")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = args.out or REPO / "bench" / "results" / f"peers-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    ROWS_LOG.append(out.with_suffix(".rows.jsonl"))
    prompts = make_prompts(args.prompts)
    if args.prompt_tokens:
        from transformers import AutoTokenizer

        prompts = pad_prompts(prompts, AutoTokenizer.from_pretrained(args.model), args.prompt_tokens)
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    for phase, work in (("remote", remote_phase), ("inproc", inproc_phase)):
        if phase in args.phases:
            try:
                rows += asyncio.run(work(args, prompts, out.parent))
            except Exception as exc:
                traceback.print_exc()
                rows.append(row(f"{phase} failed", phase, None, failed=repr(exc)[:1000]))
            out.write_text(json.dumps(report | {"rows": with_ratios(rows)}, indent=1))
    report["roofline"] = device_roofline(args.model, args.dtype) if args.load_format == "dummy" else None
    out.write_text(json.dumps(report | {"rows": with_ratios(rows)}, indent=1))
    print(format_table(rows))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
