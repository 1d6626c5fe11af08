"""Tools `list_adapters`, `import_adapter`, `delete_adapter`, `train_adapter`: LoRA adapters that
`generate` and `batch` apply per request, all on the one engine (vLLM's LoRARequest)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.core.access import Forbidden
from mcp_llm.core.inference import check_size
from mcp_llm.core.registry.adapters import check_adapter, registry
from mcp_llm.core.registry.models import serving
from mcp_llm.core.schemas import AdapterInfo
from mcp_llm.core.services import Services
from mcp_llm.errors import InputError
from mcp_llm.server.schemas import AdapterList, Example, TrainResult
from mcp_llm.server.tools.common import (
    client_name,
    principal_of,
    report_progress,
    require_local_engine,
    services_of,
    tool_errors,
)
from mcp_llm.workers.runner import run_worker

NameArg = Annotated[str, Field(description="The adapter's name (letters, digits, '.', '_', '-').", min_length=1)]


REMOTE_ADAPTERS = (
    "Serve adapters on the remote deployment (`vllm serve --enable-lora --lora-modules NAME=PATH`): "
    "they are then usable as `adapter` in generate and batch."
)


def max_rank(svc: Services) -> int:
    return svc.settings.max_lora_rank or 16  # vLLM's default


async def peft_worker(ctx: Context, svc: Services, module: str, job: dict) -> dict:
    """Run a peft worker (`mcp_llm.workers.<module>`) with this venv's Python, its progress forwarded."""

    async def progress(done: float, total: float | None, message: str) -> None:
        await report_progress(ctx, done, total, message)

    return await run_worker(
        module, job, python=Path(sys.executable), timeout_s=svc.settings.worker_timeout_s, on_progress=progress
    )


@tool_errors
async def list_adapters(ctx: Context) -> AdapterList:
    """List the LoRA adapters you may use (name, base model, rank, source, owner, training figures): your own and
    the shared ones (an admin sees all)."""
    svc = services_of(ctx)
    return AdapterList(adapters=registry(svc).all(principal_of(ctx)), lora_enabled=svc.engine.config().lora)


@tool_errors
async def import_adapter(
    ctx: Context,
    name: NameArg,
    path: Annotated[str, Field(description="A peft adapter folder inside the server's data dir.")],
) -> AdapterInfo:
    """Register a peft LoRA adapter: checked against the serving model (base model, rank, target modules,
    weights), copied into the adapter store, usable at once as `adapter` in generate and batch."""
    svc = services_of(ctx)
    require_local_engine(svc, "import_adapter", REMOTE_ADAPTERS)
    reg = registry(svc)
    source = reg.inside_data_dir(path)
    target = reg.new_path(name)
    check_adapter(source, serving(svc), max_rank(svc))
    shutil.copytree(source, target)
    figures = {"imported_from": str(source)}
    return reg.register(name, target, serving(svc), max_rank(svc), "imported", figures, client_name(ctx))


@tool_errors
async def delete_adapter(ctx: Context, name: NameArg) -> AdapterInfo:
    """Remove one of your adapters (an admin: any) from the registry and the adapter store; returns what was
    removed."""
    return registry(services_of(ctx)).delete(name, principal_of(ctx))


@tool_errors
async def share_adapter(
    ctx: Context,
    name: NameArg,
    shared: Annotated[bool, Field(description="true: every client may use it; false: its owner only.")] = True,
) -> AdapterInfo:
    """Let every client use an adapter (or only its owner again). Admins only."""
    return registry(services_of(ctx)).share(name, shared)


@tool_errors
async def train_adapter(
    ctx: Context,
    name: NameArg,
    examples: Annotated[list[Example], Field(description="2-500 examples the adapter should learn.")],
    epochs: Annotated[int, Field(ge=1, le=100, description="Passes over the examples.")] = 8,
    rank: Annotated[int, Field(ge=1, le=64, description="LoRA rank.")] = 8,
    learning_rate: Annotated[float, Field(gt=0, le=0.1)] = 2e-3,
    held_out: Annotated[
        list[Example] | None, Field(description="Inputs to compare the base model's and the adapter's answers on.")
    ] = None,
) -> TrainResult:
    """Teach the serving model a narrow task with a LoRA adapter (peft, in a worker process), register it,
    and make it usable at once (no restart): pass `adapter=name` to generate or batch.

    Progress notifications report each step's loss. Returns the loss curve, time, adapter size and, for
    `held_out` inputs, the base model's answer next to the adapter's.
    """
    svc = services_of(ctx)
    require_local_engine(svc, "train_adapter", REMOTE_ADAPTERS)
    if not 2 <= len(examples) <= 500:
        raise InputError(f"Give 2 to 500 examples (got {len(examples)}).")
    chars = sum(len(e.model_dump_json()) for e in [*examples, *(held_out or [])])
    check_size(chars, svc.settings.max_input_chars, "The examples (all together)")
    if rank > max_rank(svc):
        raise InputError(f"rank {rank} is over the engine's max_lora_rank {max_rank(svc)}.")
    model_name, model_path = serving(svc)
    if not Path(model_path).is_dir():
        raise InputError(f"Training needs the serving model's weights on disk; {model_path} is not a local folder.")
    caller = principal_of(ctx)
    svc.quotas.check_training(caller)
    reg = registry(svc)
    target = reg.new_path(name)

    job = {
        "model_path": model_path,
        "output_path": str(target),
        "examples": [e.model_dump(exclude_none=True, mode="json") for e in examples],
        "held_out": [e.model_dump(exclude_none=True, mode="json") for e in held_out or []],
        "epochs": epochs,
        "rank": rank,
        "learning_rate": learning_rate,
    }
    started = time.monotonic()
    made = await peft_worker(ctx, svc, "train_adapter", job)
    figures = {k: made[k] for k in ("steps", "train_seconds", "adapter_bytes")} | {
        "final_loss": made["loss_curve"][-1],
        "wall_seconds": round(time.monotonic() - started, 2),
    }
    info = reg.register(name, target, (model_name, model_path), max_rank(svc), "trained", figures, caller.client)
    svc.store.log_request({"client": caller.client, "kind": "train", "model": model_name, "status": "ok"})
    return TrainResult(
        adapter=info,
        loss_curve=made["loss_curve"],
        train_seconds=made["train_seconds"],
        adapter_bytes=made["adapter_bytes"],
        held_out=made["held_out"],
    )


@tool_errors
async def merge_adapters(
    ctx: Context,
    name: NameArg,
    sources: Annotated[list[str], Field(description="Registered adapters to merge (same rank).", min_length=2)],
    weights: Annotated[list[float] | None, Field(description="One weight per source (default: equal).")] = None,
    method: Annotated[Literal["linear", "ties", "dare_linear", "dare_ties"], Field(description="peft method.")] = (
        "linear"
    ),
    density: Annotated[float, Field(gt=0, le=1, description="Fraction kept by ties/dare pruning.")] = 0.5,
) -> AdapterInfo:
    """Merge registered adapters into a new one (peft `add_weighted_adapter`, in a worker process), register
    it and make it usable at once. Sources must share a rank; weights default to equal shares."""
    svc = services_of(ctx)
    require_local_engine(svc, "merge_adapters", REMOTE_ADAPTERS)
    reg, caller = registry(svc), principal_of(ctx)
    found = [reg.get(source, caller) for source in sources]
    if others := [a.name for a in found if not caller.owns(a.owner)]:
        raise Forbidden(f"Merging adapters of other clients ({', '.join(others)}) needs the admin role.")
    if weights is not None and len(weights) != len(sources):
        raise InputError(f"weights has {len(weights)} entries for {len(sources)} sources: give one per source.")
    target = reg.new_path(name)
    model_name, model_path = serving(svc)
    job = {
        "model_path": model_path,
        "output_path": str(target),
        "sources": [a.path for a in found],
        "weights": weights or [1.0 / len(sources)] * len(sources),
        "method": method,
        "density": density,
    }
    made = await peft_worker(ctx, svc, "merge_adapters", job)
    figures = made | {"sources": sources}
    return reg.register(name, target, (model_name, model_path), max_rank(svc), "merged", figures, caller.client)


TOOLS = [list_adapters, import_adapter, delete_adapter, share_adapter, train_adapter, merge_adapters]
