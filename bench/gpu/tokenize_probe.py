"""Time chat templating + tokenization per call through each tokenizer object the server could use
(the GPU profile showed ~1.8 ms per `generate` there). Usage: python tokenize_probe.py MODEL_DIR"""

import cProfile
import pstats
import sys
import time

MESSAGES = [{"role": "user", "content": "Background note 1: remember a lighthouse keeper. Write a short story."}]


def per_call_ms(tokenizer, n: int = 300) -> float:
    def once() -> None:
        text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
        tokenizer.encode(text, add_special_tokens=False)

    for _ in range(10):
        once()
    started = time.perf_counter()
    for _ in range(n):
        once()
    return (time.perf_counter() - started) / n * 1000


def main() -> None:
    import jinja2
    import transformers
    from transformers import AutoTokenizer
    from vllm.tokenizers import get_tokenizer
    from vllm.tokenizers.hf import maybe_make_thread_pool

    model = sys.argv[1]
    print(f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}, python {sys.version.split()[0]}")
    variants = {
        "transformers AutoTokenizer": AutoTokenizer.from_pretrained(model),
        "vllm get_tokenizer": get_tokenizer(model),
        "vllm renderer's pool (maybe_make_thread_pool)": maybe_make_thread_pool(get_tokenizer(model), 2),
    }
    for name, tokenizer in variants.items():
        print(f"{name}: {per_call_ms(tokenizer):.3f} ms per chat template + encode")
    profile = cProfile.Profile()
    profile.runcall(per_call_ms, variants["vllm renderer's pool (maybe_make_thread_pool)"], 200)
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
