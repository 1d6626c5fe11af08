"""The adapter registry: LoRA adapters in `<data_dir>/adapters/<name>`, described in SQLite (table `adapters`).

An adapter is checked before it is registered: a readable `adapter_config.json` (peft), the serving
model as its base, a rank the engine accepts, target modules the base model has, weights present.
Paths a client gives must lie inside the data dir (nothing else on the machine is read).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_llm.core.access import Forbidden, Principal
from mcp_llm.core.registry.models import NAME_PATTERN
from mcp_llm.core.schemas import AdapterInfo
from mcp_llm.engine.base import Adapter
from mcp_llm.errors import InputError

if TYPE_CHECKING:
    from mcp_llm.core.services import Services

if TYPE_CHECKING:
    import sqlite_utils  # the module costs 0.2 s to import: not before the handshake


SOURCES = ("trained", "merged", "imported")


class AdapterRegistry:
    """The `adapters` table and the adapter store folder it describes."""

    def __init__(self, db: sqlite_utils.Database, data_dir: Path) -> None:
        self.db, self.data_dir = db, data_dir.resolve()
        self.store = self.data_dir / "adapters"

    def all(self, caller: Principal | None = None) -> list[AdapterInfo]:
        """Every adapter, or those `caller` may use: its own and the shared ones (an admin: all)."""
        rows = (_info(row) for row in self.db["adapters"].rows_where(order_by="name"))
        return [info for info in rows if caller is None or usable(caller, info)]

    def get(self, name: str, caller: Principal | None = None) -> AdapterInfo:
        """The adapter; an unknown name, or with `caller` one it may not use, is "not found" alike."""
        rows = [_info(row) for row in self.db["adapters"].rows_where("name = ?", [name])]
        if not rows or (caller is not None and not usable(caller, rows[0])):
            known = ", ".join(a.name for a in self.all(caller)) or "none yet"
            raise InputError(f"No adapter named {name!r} (yours to use: {known}): list_adapters shows them.")
        return rows[0]

    def resolve(self, name: str | None, caller: Principal | None = None) -> Adapter | None:
        """The engine's view of a registered adapter `caller` may use (None for the base model)."""
        if name is None:
            return None
        info = self.get(name, caller)
        if not (Path(info.path) / "adapter_config.json").is_file():
            raise InputError(f"Adapter {name!r} has lost its files ({info.path}): delete_adapter it and add it again.")
        return Adapter(info.name, info.path)

    def new_path(self, name: str) -> Path:
        """Where a new adapter goes; InputError for a bad or taken name."""
        if not NAME_PATTERN.match(name) or ".." in name:
            raise InputError(f"Invalid adapter name {name!r}: use 1-100 letters, digits, '.', '_' or '-'.")
        target = self.store / name
        if list(self.db["adapters"].rows_where("name = ?", [name])) or target.exists():
            raise InputError(f"An adapter named {name!r} already exists: choose another name or delete_adapter it.")
        self.store.mkdir(parents=True, exist_ok=True)
        return target

    def inside_data_dir(self, path: str) -> Path:
        resolved = (Path(path) if Path(path).is_absolute() else self.data_dir / path).resolve()
        if self.data_dir not in resolved.parents:
            raise InputError(f"{path} is outside the data dir {self.data_dir}: copy the adapter folder there first.")
        return resolved

    def register(
        self,
        name: str,
        path: Path,
        base: tuple[str, str],
        max_rank: int,
        source: str,
        figures: dict,
        owner: str | None = None,
    ) -> AdapterInfo:
        """Check the adapter folder against the serving model `base` (name, path) and record it as `owner`'s."""
        rank, targets = check_adapter(path, base, max_rank)
        row = {
            "name": name,
            "path": str(path),
            "base_model": base[0],
            "rank": rank,
            "target_modules": json.dumps(targets),
            "source": source,
            "created_at": time.time(),
            "figures": json.dumps(figures),
            "owner": owner,
            "shared": 0,
        }
        self.db["adapters"].insert(row, pk="name")
        return _info(row)

    def delete(self, name: str, caller: Principal | None = None) -> AdapterInfo:
        """Remove an adapter and its folder: the owner's or an admin's to delete (a shared one is not the
        users' it was shared with)."""
        info = self.get(name, caller)
        if caller is not None and not caller.owns(info.owner):
            owner = info.owner or "the admins"
            raise Forbidden(f"Adapter {name!r} belongs to {owner}: only its owner or an admin may delete it.")
        self.db["adapters"].delete(name)
        shutil.rmtree(info.path, ignore_errors=True)
        return info

    def share(self, name: str, shared: bool) -> AdapterInfo:
        """Make an adapter usable by every client, or by its owner only again."""
        self.get(name)
        self.db["adapters"].update(name, {"shared": int(shared)})
        return self.get(name)


def usable(caller: Principal, info: AdapterInfo) -> bool:
    """Whether `caller` may use (and see) an adapter."""
    return info.shared or caller.owns(info.owner)


def check_adapter(path: Path, base: tuple[str, str], max_rank: int) -> tuple[int, list[str]]:
    """(rank, target modules) of a peft adapter folder; InputError saying what is wrong otherwise."""
    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} has no readable adapter_config.json ({exc}): is it a peft LoRA adapter?") from exc
    if not any(path.glob("adapter_model.*")):
        raise InputError(f"{path} has no adapter weights (adapter_model.safetensors or .bin).")
    name, model_path = base
    declared = str(config.get("base_model_name_or_path") or "")
    if declared and Path(declared).name not in (name, Path(model_path).name):
        raise InputError(f"The adapter was made for {declared!r}, but this server serves {name!r}.")
    rank = int(config.get("r") or 0)
    if not 0 < rank <= max_rank:
        raise InputError(
            f"The adapter's rank {rank} is over the engine's max_lora_rank {max_rank}: restart with a larger one."
        )
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    missing = [t for t in targets if not _base_has_module(model_path, t)]
    if missing:
        raise InputError(f"The base model has no modules named {missing}: the adapter targets another architecture.")
    return rank, targets


def _base_has_module(model_path: str, module: str) -> bool:
    """Whether a weight of the base checkpoint lives under a module of that name (True when not checkable)."""
    files = list(Path(model_path).glob("*.safetensors"))
    if not files:
        return True
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="np") as f:
            if any(f".{module}." in key for key in f.keys()):  # noqa: SIM118 (safe_open is not iterable)
                return True
    return False


def _info(row: dict) -> AdapterInfo:
    fields = {"target_modules": json.loads(row["target_modules"]), "figures": json.loads(row["figures"] or "{}")}
    return AdapterInfo(**(row | fields | {"shared": bool(row.get("shared"))}))


def resolve_adapter(svc: Services, name: str | None, caller: Principal | None = None) -> Adapter | None:
    """The adapter a request names: a registered one `caller` may use, or with the remote backend one the remote
    serves (the remote deployment decides who may use its adapters)."""
    if name is None:
        return None
    if svc.engine.backend != "local":
        return svc.engine.current.adapter(name)  # type: ignore[attr-defined]
    return registry(svc).resolve(name, caller)


def registry(svc: Services) -> AdapterRegistry:
    """The adapter registry (its table lives in the shared database)."""
    return AdapterRegistry(svc.store.db, svc.settings.data_dir)
