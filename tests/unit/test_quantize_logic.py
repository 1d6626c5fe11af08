"""The pure logic under `quantize` and the model registry (no engine, no worker): the group size that divides
every layer, and model paths and names that stay inside the model store."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_llm.core.db import migrate
from mcp_llm.core.registry.models import Registry
from mcp_llm.errors import InputError
from mcp_llm.workers.quantize import pick_group_size


def test_group_size_divides_every_layer() -> None:
    assert pick_group_size([576, 1536]) == 64  # the default model: 576 = 9 x 64
    assert pick_group_size([4096, 11008]) == 128
    assert pick_group_size([100, 300]) is None  # falls back to per channel


def test_paths_stay_inside_the_model_store(tmp_path: Path) -> None:
    import sqlite_utils

    store = tmp_path / "models"
    (store / "good").mkdir(parents=True)
    (store / "good" / "config.json").write_text("{}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("{}")
    (store / "escape").symlink_to(tmp_path / "outside")
    db = sqlite_utils.Database(memory=True)
    migrate(db)
    reg = Registry(db, store)
    assert reg.inside("good") == (store / "good").resolve()
    for bad in ("../outside", str(tmp_path / "outside"), "escape", "/etc"):
        with pytest.raises(InputError, match="outside the model store"):
            reg.inside(bad)
    for bad in ("../x", "a/b", ".hidden", "x" * 101):
        with pytest.raises(InputError, match="Invalid model name"):
            reg.check_name(bad)
