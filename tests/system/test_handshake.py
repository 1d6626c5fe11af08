"""Start-up as users run it: everything the handshake needs loads without vLLM, and a `server.py` subprocess
answers the handshake over stdio before (and without) vLLM. Keep-alive progress while a call waits for the
engine is in tests/unit/test_startup.py; `bench/startup.py` measures the times."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import REPO, SERVER_CMD, server_env

pytestmark = pytest.mark.anyio


def test_the_entry_imports_neither_vllm_nor_torch(tmp_path: Path) -> None:
    """Everything the handshake needs (entry, app, tools with their input schemas) loads without vLLM, torch or
    transformers: they are imported by the engine start, in the background, after `initialize` is answered."""
    code = """
import asyncio, json, sys
import server, mcp_llm.server.auth, mcp_llm.datadir, mcp_llm.server.http, mcp_llm.core.store
from mcp_llm.server.app import create_app
from mcp_llm.settings import Settings
tools = asyncio.run(create_app(Settings()).list_tools())
assert all(t.input_schema for t in tools)
print(json.dumps({"tools": len(tools), "heavy": [m for m in ("vllm", "torch", "transformers") if m in sys.modules]}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=server_env(tmp_path), timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["tools"] > 10
    assert found["heavy"] == []


def _stdio_params(tmp_path: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=SERVER_CMD[0], args=SERVER_CMD[1:], env=server_env(tmp_path, **env), cwd=str(REPO)
    )


@pytest.mark.slow
async def test_stdio_handshake_is_answered_without_vllm(tmp_path: Path) -> None:
    """A vLLM that takes 3 s to import and then fails: `initialize`, `tools/list` and `model://config` (what was
    asked for, state "starting") are answered meanwhile, a tool call hears "engine starting: importing vLLM", then
    gets the start's failure as a tool error."""
    fake = tmp_path / "fake-site"
    (fake / "vllm").mkdir(parents=True)
    (fake / "vllm" / "__init__.py").write_text(
        "import time\ntime.sleep(3)\nraise ImportError('no vLLM in this test')\n"
    )
    heard: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        heard.append(message or "")

    with anyio.fail_after(120):
        async with Client(_stdio_params(tmp_path, PYTHONPATH=str(fake)), read_timeout_seconds=60) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"generate", "batch", "count_tokens"} <= names
            config = json.loads((await client.read_resource("model://config")).contents[0].text)
            result = await client.call_tool("count_tokens", {"prompt": "hello"}, progress_callback=progress)
    assert (config["model"], config["state"], config["max_model_len"]) == ("SmolLM2-135M-Instruct", "starting", 2048)
    assert config["detail"].startswith("engine starting") and config["vllm_version"] is None
    assert result.is_error
    assert "no vLLM in this test" in result.content[0].text
    assert heard and heard[0].startswith("engine starting: importing vLLM, "), heard
