"""Quantize a checkpoint with llm-compressor (`oneshot`, data-free schemes) into a compressed-tensors one.

Runs in the worker venv: `python -m mcp_llm.workers.quantize`, job spec on stdin:
`{"model_path": DIR, "output_path": DIR, "scheme": "W8A8" | "W4A16" | "FP8_DYNAMIC"}`.
The checkpoint is written to a temporary sibling folder and renamed into place when complete.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from mcp_llm.workers.protocol import Channel, JobInputError, serve

SCHEMES = ("W8A8", "W4A16", "FP8_DYNAMIC")
GROUP_SIZES = (128, 64, 32)  # W4A16: the largest that divides every quantized layer's input size


def pick_group_size(in_features: list[int]) -> int | None:
    """Largest group size in GROUP_SIZES dividing every input size; None = fall back to per-channel."""
    return next((g for g in GROUP_SIZES if all(n % g == 0 for n in in_features)), None)


def _modifier(scheme: str, model) -> tuple[object, dict]:
    """The QuantizationModifier for `scheme` and what was chosen for it (group size or per-channel)."""
    import torch
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.quantization import QuantizationModifier

    common = {"targets": ["Linear"], "ignore": ["lm_head"]}
    if scheme != "W4A16":
        return QuantizationModifier(scheme=scheme, **common), {"strategy": "preset " + scheme}
    sizes = sorted(
        {m.in_features for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}
    )
    group = pick_group_size(sizes)
    weights = (
        QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=group)
        if group
        else QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="channel")
    )
    chosen = {"strategy": f"group {group}" if group else "channel", "group_size": group, "input_sizes": sizes}
    config = {"group_0": QuantizationScheme(targets=["Linear"], weights=weights)}
    return QuantizationModifier(config_groups=config, ignore=["lm_head"]), chosen


def run(job: dict, channel: Channel) -> dict:
    scheme = job.get("scheme")
    if scheme not in SCHEMES:
        raise JobInputError(f"Unsupported scheme {scheme!r}: choose one of {', '.join(SCHEMES)}.")
    source, output = Path(job["model_path"]), Path(job["output_path"])
    if not (source / "config.json").is_file():
        raise JobInputError(f"{source} is not a model folder (no config.json).")
    started = time.perf_counter()
    channel.progress(0, 3, f"loading {source.name}")
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(source)
    recipe, chosen = _modifier(scheme, model)
    channel.progress(1, 3, f"quantizing to {scheme} ({chosen['strategy']})")
    oneshot(model=model, recipe=recipe)
    channel.progress(2, 3, "saving the compressed-tensors checkpoint")
    partial = output.with_name(f".{output.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, save_compressed=True)
    tokenizer.save_pretrained(partial)
    partial.rename(output)
    channel.progress(3, 3, "done")
    return {"scheme": scheme, "output_path": str(output), "seconds": time.perf_counter() - started, **chosen}


if __name__ == "__main__":
    serve(run)
