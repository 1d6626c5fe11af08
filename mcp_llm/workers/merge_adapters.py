"""Merge LoRA adapters into a new one with peft's `add_weighted_adapter` (LoRAX-style merged adapters).

Runs as `python -m mcp_llm.workers.merge_adapters`, job spec on stdin:
`{"model_path", "output_path", "sources": [DIR, ...], "weights": [...], "method", "density"}`; method is
linear, ties, dare_linear or dare_ties (same-rank sources). Written to a temporary folder, then renamed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mcp_llm.workers.protocol import Channel, JobInputError, serve

METHODS = ("linear", "ties", "dare_linear", "dare_ties")


def run(job: dict, channel: Channel) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if job["method"] not in METHODS:
        raise JobInputError(f"method must be one of {', '.join(METHODS)}")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(job["model_path"], dtype=torch.float32)
    names = [f"source{i}" for i in range(len(job["sources"]))]
    model = PeftModel.from_pretrained(base, job["sources"][0], adapter_name=names[0])
    for name, source in zip(names[1:], job["sources"][1:], strict=True):
        model.load_adapter(source, adapter_name=name)
    channel.progress(1, 2, "sources loaded")
    density = job.get("density") if job["method"] != "linear" else None
    try:
        model.add_weighted_adapter(names, job["weights"], "merged", combination_type=job["method"], density=density)
    except ValueError as exc:  # e.g. sources of different ranks for a linear merge
        raise JobInputError(f"peft cannot merge these adapters: {exc}") from exc
    output = Path(job["output_path"])
    partial = output.with_name(f".{output.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, selected_adapters=["merged"])
    (partial / "merged").rename(output)  # peft saves a named adapter in a subfolder of that name
    shutil.rmtree(partial, ignore_errors=True)
    channel.progress(2, 2, "merged adapter saved")
    return {"rank": model.peft_config["merged"].r, "method": job["method"], "weights": job["weights"]}


if __name__ == "__main__":
    serve(run)
