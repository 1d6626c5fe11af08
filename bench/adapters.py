"""Benchmark for adapters and embeddings: the same workload through the base model, one LoRA adapter,
and mixed over 4 adapters in one engine (issue: multi-LoRA should cost little); adapter memory vs an extra
engine; embedding texts/s through the pooling engine vs transformers one text at a time.
Prints a table and writes JSON. Usage: python bench/adapters.py [--prompts 64 --max-tokens 32 --texts 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench import REPO, log, machine_info, make_prompts

ADAPTERS = 4


def make_adapters(model_dir: Path, out: Path, count: int) -> list[Path]:
    """`count` rank-8 LoRA adapters with random (non-zero) weights: throughput does not depend on training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for i in range(count):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        config = LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False)
        get_peft_model(model, config).save_pretrained(out / f"adapter{i}")
        paths.append(out / f"adapter{i}")
    return paths


async def generation_stages(model_dir: Path, adapters: list[Path], prompts: list[str], max_tokens: int) -> dict:
    from mcp_llm.engine.base import Adapter
    from mcp_llm.engine.local import LocalEngine
    from mcp_llm.schemas import SamplingOptions

    engine = await LocalEngine.start(
        {"model": str(model_dir), "max_model_len": 2048, "enable_lora": True, "max_loras": ADAPTERS},
        "bench",
    )
    options = SamplingOptions(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    ids = [engine.tokenize_text(p) for p in prompts]
    refs = [Adapter(f"a{i}", str(p)) for i, p in enumerate(adapters)]
    plans = {
        "base": [None] * len(ids),
        "one adapter": [refs[0]] * len(ids),
        f"mixed over {len(refs)} adapters": [refs[i % len(refs)] for i in range(len(ids))],
    }
    results = {}
    try:
        for ref in refs:  # load every adapter once, untimed
            await engine.generate(ids[0], SamplingOptions(max_tokens=1), f"warm-{ref.name}", ref)
        await engine.generate(ids[0], SamplingOptions(max_tokens=1), "warm-base")
        for name, plan in plans.items():
            started = time.perf_counter()
            done = await asyncio.gather(
                *(engine.generate(t, options, f"{name}-{i}", a) for i, (t, a) in enumerate(zip(ids, plan, strict=True)))
            )
            wall = time.perf_counter() - started
            tokens = sum(c.usage.completion_tokens for c in done)
            results[name] = {"requests": len(done), "output_tokens": tokens, "wall_s": wall, "tok_per_s": tokens / wall}
    finally:
        await engine.shutdown(5)
    return results


async def embedding_stage(texts: list[str], model_dir: Path) -> dict:
    from mcp_llm.engine.embedder import Embedder

    embedder = await Embedder.start(str(model_dir), "all-MiniLM-L6-v2")
    try:
        ids = embedder.token_ids(texts[:4])
        await embedder.embed(ids, True, "warm")
        started = time.perf_counter()
        vectors = await embedder.embed(embedder.token_ids(texts), True, "bench")
        wall = time.perf_counter() - started
    finally:
        embedder.shutdown()
    return {"texts": len(vectors), "wall_s": wall, "texts_per_s": len(vectors) / wall}


def naive_embedding_stage(texts: list[str], model_dir: Path) -> dict:
    """transformers, one text at a time, mean pooling + normalize (what sentence-transformers does)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()

    def one(text: str) -> None:
        batch = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    one(texts[0])
    started = time.perf_counter()
    for text in texts:
        one(text)
    wall = time.perf_counter() - started
    return {"texts": len(texts), "wall_s": wall, "texts_per_s": len(texts) / wall}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> None:
    from mcp_llm import default_model, embedding_model
    from mcp_llm.settings import Settings

    parser = argparse.ArgumentParser(prog="bench/adapters.py", description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    store = Settings().model_store
    model_dir = default_model.ensure_prepared(store)
    embed_dir = embedding_model.prepare(store)
    prompts = make_prompts(args.prompts)
    with tempfile.TemporaryDirectory(prefix="mcp-llm-adapters-") as tmp:
        log(f"making {ADAPTERS} random rank-8 adapters")
        adapters = make_adapters(model_dir, Path(tmp), ADAPTERS)
        adapter_bytes = dir_bytes(adapters[0])
        log(f"generation: {args.prompts} prompts x {args.max_tokens} tokens, base / one adapter / mixed")
        generation = asyncio.run(generation_stages(model_dir, adapters, prompts, args.max_tokens))
    texts = [f"{p} Keep it short." for p in make_prompts(args.texts)]
    log(f"embedding {len(texts)} texts: pooling engine, then transformers one at a time")
    embedding = {"vLLM pooling engine": asyncio.run(embedding_stage(texts, embed_dir))}
    embedding["transformers, one at a time"] = naive_embedding_stage(texts, embed_dir)
    base_rate = generation["base"]["tok_per_s"]
    report = {
        "date": datetime.now(UTC).isoformat(),
        "machine": machine_info(model_dir),
        "generation": generation,
        "ratios": {name: r["tok_per_s"] / base_rate for name, r in generation.items()},
        "memory": {"adapter_bytes": adapter_bytes, "model_weights_bytes": dir_bytes(model_dir)},
        "embedding": embedding,
    }
    out = args.out or REPO / "bench" / "results" / f"adapters-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'workload':<28} {'requests':>8} {'tokens':>7} {'wall s':>7} {'tok/s':>7} {'vs base':>7}")
    for name, r in generation.items():
        ratio = report["ratios"][name]
        print(
            f"{name:<28} {r['requests']:>8} {r['output_tokens']:>7} {r['wall_s']:>7.2f} "
            f"{r['tok_per_s']:>7.1f} {ratio:>7.2f}"
        )
    mem = report["memory"]
    print(
        f"\nadapter on disk {mem['adapter_bytes'] / 1e6:.1f} MB "
        f"vs model weights {mem['model_weights_bytes'] / 1e6:.0f} MB"
    )
    print(f"\n{'embedding':<28} {'texts':>8} {'wall s':>7} {'texts/s':>8}")
    for name, r in embedding.items():
        print(f"{name:<28} {r['texts']:>8} {r['wall_s']:>7.2f} {r['texts_per_s']:>8.1f}")
    log(f"results written to {out}")


if __name__ == "__main__":
    main()
