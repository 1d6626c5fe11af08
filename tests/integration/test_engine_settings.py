"""vLLM itself rejects a parallel layout this machine cannot run, and the error names it (an engine start in
this process, not the shared engine; the settings checked before any start are tests/unit/test_scaling.py)."""

from __future__ import annotations

import pytest

from mcp_llm.engine.local import EngineSettingsError, LocalEngine
from tests.conftest import MODELS_DIR

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tensor_parallel_size": 2}, "tensor parallel size"),  # 9 attention heads do not split in 2
        ({"nnodes": 2, "node_rank": 1}, "--nnodes"),  # 2 nodes for a world of 1 GPU
    ],
)
async def test_vllm_rejects_a_parallel_layout_and_the_error_names_it(fields: dict, named: str) -> None:
    from mcp_llm import default_model

    model = str(default_model.ensure_prepared(MODELS_DIR))
    with pytest.raises(EngineSettingsError, match=f"vLLM rejected the engine settings: .*{named}"):
        await LocalEngine.start({"model": model, **fields}, "probe")
