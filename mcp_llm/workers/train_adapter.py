"""Train a LoRA adapter with peft on a chat model from a few `{prompt | messages, completion}` examples.

Runs as `python -m mcp_llm.workers.train_adapter` (the main venv has peft), job spec on stdin:
`{"model_path", "output_path", "examples", "epochs", "rank", "learning_rate", "held_out"}`. Loss is
computed on the completion tokens only; each optimizer step is reported as progress with its loss.
The adapter is written to a temporary sibling folder and renamed into place when complete.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from mcp_llm.workers.protocol import Channel, JobInputError, serve

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


def _chat(example: dict) -> list[dict]:
    if "messages" in example:
        return list(example["messages"])
    return [{"role": "user", "content": example["prompt"]}]


def _encode(tokenizer, example: dict) -> tuple[list[int], list[int]]:
    """Token ids of prompt + completion, and labels that score the completion only."""
    prompt = tokenizer.apply_chat_template(_chat(example), tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    answer_ids = tokenizer.encode(example["completion"] + (tokenizer.eos_token or ""), add_special_tokens=False)
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def _greedy(model, tokenizer, example: dict, max_new_tokens: int = 24) -> str:
    import torch

    prompt = tokenizer.apply_chat_template(_chat(example), tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def run(job: dict, channel: Channel) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    examples = job["examples"]
    if not examples:
        raise JobInputError("no training examples")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(job["model_path"])
    model = AutoModelForCausalLM.from_pretrained(job["model_path"], dtype=torch.float32)
    held_out = job.get("held_out") or []
    before = [_greedy(model, tokenizer, e) for e in held_out]
    rank = int(job["rank"])
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=TARGET_MODULES, lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config)
    encoded = [_encode(tokenizer, e) for e in examples]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=float(job["learning_rate"]))
    steps = int(job["epochs"]) * len(encoded)
    losses, started = [], time.perf_counter()
    model.train()
    for step in range(steps):
        ids, labels = encoded[step % len(encoded)]
        output = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(float(output.loss), 4))
        channel.progress(step + 1, steps, f"step {step + 1}/{steps}, loss {losses[-1]:.3f}")
    seconds = time.perf_counter() - started
    model.eval()
    after = [_greedy(model, tokenizer, e) for e in held_out]
    output_path = Path(job["output_path"])
    partial = output_path.with_name(f".{output_path.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    partial.rename(output_path)
    size = sum(f.stat().st_size for f in output_path.rglob("*") if f.is_file())
    return {
        "rank": rank,
        "target_modules": TARGET_MODULES,
        "steps": steps,
        "loss_curve": losses,
        "train_seconds": round(seconds, 2),
        "adapter_bytes": size,
        "held_out": [
            {"input": _chat(e)[-1]["content"], "before": b, "after": a}
            for e, b, a in zip(held_out, before, after, strict=True)
        ],
    }


if __name__ == "__main__":
    serve(run)
