"""Make `.gpu/model8b`: the Llama-3-8B-shaped config (weights come from `load_format=dummy`) plus a
tokenizer, so the server and raw vLLM run the same text workload on the GPU with no weights on disk.

The tokenizer is the default model's (SmolLM2, 49,152 tokens) with its vocabulary padded to the config's
128,256 ids: random weights emit any id, and every id must decode. The padding entries (`x49152`, ...)
are unreachable by BPE merges, so encoding is unchanged. Usage: python bench/gpu/make_model8b.py [DEST]
"""

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CONFIG = REPO.parent / "shared" / "gpu" / "model8b" / "config.json"
TOKENIZER_FILES = ("tokenizer_config.json", "chat_template.jinja")


def main() -> None:
    from mcp_llm.default_model import ensure_prepared
    from mcp_llm.settings import Settings

    dest = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / ".gpu" / "model8b")
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads(CONFIG.read_text())
    source = ensure_prepared(Settings().model_store)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, dest / name)
    tokenizer = json.loads((source / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    for token_id in range(len(vocab), config["vocab_size"]):
        vocab[f"x{token_id}"] = token_id
    (dest / "tokenizer.json").write_text(json.dumps(tokenizer))
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    print(f"{dest}: config {CONFIG.name}, tokenizer vocabulary {len(vocab)}")


if __name__ == "__main__":
    main()
