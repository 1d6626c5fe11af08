"""The remote backend's settings must agree (`--backend openai` with `--base-url`, and only then), and an
unreachable URL at start is named (nothing listens there: no engine, no vLLM server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_llm.core.services import open_services
from mcp_llm.errors import Unavailable
from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio


async def test_an_unreachable_url_at_start_is_named(tmp_path: Path) -> None:
    settings = Settings(backend="openai", base_url="http://127.0.0.1:9", data_dir=tmp_path)
    with pytest.raises(Unavailable, match=r"No vLLM server answers at http://127\.0\.0\.1:9"):
        async with open_services(settings):
            pass


def test_backend_settings_must_agree() -> None:
    with pytest.raises(ValueError, match="needs --base-url"):
        Settings(backend="openai")
    with pytest.raises(ValueError, match="--base-url is for --backend openai"):
        Settings(base_url="http://127.0.0.1:8000")
