"""Do base and LoRA rows sharing one engine step keep their own weights? A check on vLLM itself.

Runs the same prompts three ways at temperature 0 (each alone with its adapter or none, all of them in one
`generate` call, mixed base/adapter rows) and reports, per row, whether the mixed answer equals the alone
answer. Base answers must differ from adapter answers for the check to mean anything (reported as
`adapters_change_output`). Prints a table and writes JSON.

    python bench/lora_mixed.py --model DIR [--adapter DIR ...] [--dummy] [--max-loras 1] --out result.json

Without `--adapter`, rank-8 adapters with random weights are made for the model (on q/k/v/o projections), so
it runs on the lent GPU with `--dummy` weights and no training. `VLLM_PLUGINS=none` turns our vLLM plugin off
(mcp_llm/engine/vllm_patches.py), which shows the engine's behaviour without the fix.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

PROMPTS = [
    "What is the secret word?",
    "Tell me a joke about cats.",
    "Say the secret word.",
    "What is 2 + 2?",
    "Which word is secret?",
    "Name a colour.",
    "Tell me the secret word.",
    "Where is Paris?",
]


def random_adapter(model_dir: Path, out: Path, seed: int, rank: int = 8) -> Path:
    """A peft LoRA folder with random weights large enough to change every answer."""
    import torch
    from safetensors.torch import save_file

    config = json.loads((model_dir / "config.json").read_text())
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    kv = config.get("num_key_value_heads", heads) * head_dim
    shapes = {"q_proj": (heads * head_dim, hidden), "k_proj": (kv, hidden), "v_proj": (kv, hidden)}
    shapes["o_proj"] = (hidden, heads * head_dim)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for name, (rows, cols) in shapes.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, cols, generator=generator) * 0.2
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(rows, rank, generator=generator) * 0.2
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "target_modules": list(shapes),
        "bias": "none",
        "fan_in_fan_out": False,
        "base_model_name_or_path": str(model_dir),
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter_config))
    return out


def run(args: argparse.Namespace) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    model = Path(args.model)
    adapters = [Path(a) for a in args.adapter]
    scratch = Path(tempfile.mkdtemp(prefix="lora-mixed-"))
    while len(adapters) < args.max_loras:
        adapters.append(random_adapter(model, scratch / f"random-{len(adapters)}", seed=len(adapters)))
    requests = [LoRARequest(f"a{i}", i + 1, str(path)) for i, path in enumerate(adapters)]
    import torch

    llm = LLM(
        model=str(model),
        dtype="auto" if torch.cuda.is_available() else "float32",  # CPUs here lack bf16 instructions
        load_format="dummy" if args.dummy else "auto",
        enable_lora=True,
        max_loras=args.max_loras,
        max_lora_rank=16,
        enforce_eager=True,
        max_model_len=1024,
        gpu_memory_utilization=0.3,
        seed=0,
    )
    params = SamplingParams(temperature=0, max_tokens=16)
    plan = [requests[i // 2 % len(requests)] if i % 2 == 0 else None for i in range(len(PROMPTS))]
    chats = [[{"role": "user", "content": p}] for p in PROMPTS]

    def texts(outputs) -> list[str]:
        return [o.outputs[0].text for o in outputs]

    alone = [
        texts(llm.chat([chat], params, lora_request=lora, use_tqdm=False))[0]
        for chat, lora in zip(chats, plan, strict=True)
    ]
    base_alone = [texts(llm.chat([chat], params, use_tqdm=False))[0] for chat in chats]
    mixed = texts(llm.chat(chats, params, lora_request=plan, use_tqdm=False))
    rows = [
        {"prompt": p, "adapter": lora.lora_name if lora else None, "alone": a, "mixed": m, "same": a == m}
        for p, lora, a, m in zip(PROMPTS, plan, alone, mixed, strict=True)
    ]
    adapter_rows = [i for i, lora in enumerate(plan) if lora is not None]
    return {
        "device": _device(),
        "vllm_plugins": os.environ.get("VLLM_PLUGINS", "(all)"),
        "max_loras": args.max_loras,
        "dummy_weights": args.dummy,
        "adapters_change_output": all(alone[i] != base_alone[i] for i in adapter_rows),
        "base_rows_same": all(r["same"] for r in rows if r["adapter"] is None),
        "adapter_rows_same": all(r["same"] for r in rows if r["adapter"] is not None),
        "rows": rows,
    }


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", action="append", default=[], help="a peft LoRA folder (repeatable)")
    parser.add_argument("--dummy", action="store_true", help="random model weights (vLLM load_format=dummy)")
    parser.add_argument("--max-loras", type=int, default=1)
    parser.add_argument("--out", default="bench/results/lora_mixed.json")
    args = parser.parse_args()
    result = run(args)
    print(f"{result['device']}  plugins={result['vllm_plugins']}  max_loras={result['max_loras']}")
    print(f"{'adapter':10} {'same':5} {'alone':40} mixed")
    for row in result["rows"]:
        print(f"{row['adapter'] or 'base':10} {row['same']!s:5} {row['alone'][:38]!r:40} {row['mixed'][:38]!r}")
    print(
        f"base rows same: {result['base_rows_same']}  adapter rows same: {result['adapter_rows_same']}  "
        f"adapters change output: {result['adapters_change_output']}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
