"""The real MCP Inspector CLI (npm @modelcontextprotocol/inspector, pinned) against our server over stdio
(`python server.py`, as a desktop client starts it) and over Streamable HTTP: list tools, resources and
prompts, call `generate`, read `model://config`. The test installs the Inspector into .cache/ once."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mcp_llm.engine import reaper
from tests.conftest import MODELS_DIR, REPO, SERVER_CMD
from tests.support.servers import HttpServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
PREFIX = REPO / ".cache" / "inspector"
CALL_GENERATE = [
    "--method", "tools/call", "--tool-name", "generate",
    "--tool-arg", "prompt=The capital of France is", "--tool-arg", "max_tokens=8", "--tool-arg", "temperature=0",
]  # fmt: skip


@pytest.fixture(scope="module")
def inspector() -> Path:
    """The Inspector's CLI, installed from the npm registry on first use."""
    binary = PREFIX / "node_modules" / ".bin" / "mcp-inspector"
    if not binary.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed: the MCP Inspector CLI needs Node.js and npm")
        command = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(PREFIX), INSPECTOR]
        subprocess.run(command, check=True, timeout=600)
    return binary


def inspect(inspector: Path, target: list[str], *method: str) -> dict:
    """Run one Inspector CLI call and return its JSON answer. Its stderr (and the stdio server's) goes to a
    file: a pipe would stay open as long as any process the server left behind."""
    with tempfile.TemporaryFile("w+") as errors:
        done = subprocess.run(
            [str(inspector), "--cli", *target, *method], stdout=subprocess.PIPE, stderr=errors, text=True, timeout=300
        )
        errors.seek(0)
        assert done.returncode == 0, errors.read()[-2000:]
    return json.loads(done.stdout)


def check_everything(inspector: Path, target: list[str], generate: bool = True) -> None:
    tools = {t["name"] for t in inspect(inspector, target, "--method", "tools/list")["tools"]}
    assert {"generate", "batch", "count_tokens", "embed", "train_adapter", "quantize"} <= tools
    resources = {r["uri"] for r in inspect(inspector, target, "--method", "resources/list")["resources"]}
    assert {"model://config", "metrics://engine"} <= resources
    prompts = {p["name"] for p in inspect(inspector, target, "--method", "prompts/list")["prompts"]}
    assert {"review_code", "review_output", "review_serving"} <= prompts
    if generate:
        answer = inspect(inspector, target, *CALL_GENERATE)
        assert not answer.get("isError") and "Paris" in answer["structuredContent"]["text"]
    config = inspect(inspector, target, "--method", "resources/read", "--uri", "model://config")
    assert json.loads(config["contents"][0]["text"])["model"] == "SmolLM2-135M-Instruct"


def test_inspector_over_stdio(inspector: Path, tmp_path: Path) -> None:
    env = ["-e", f"MCP_LLM_DATA_DIR={tmp_path}", "-e", f"MCP_LLM_MODELS_DIR={MODELS_DIR}"]
    try:
        # Each CLI call spawns a server, and its requests time out after 60 s without resetting on progress: a
        # first `generate` races the engine start (over 60 s on a loaded 2-core CPU). So over stdio: everything
        # answered without the engine; `generate` through the Inspector runs over HTTP below, and over stdio
        # with the SDK client (tests/system/test_client_configs.py, test_transports.py).
        check_everything(inspector, [*env, *SERVER_CMD], generate=False)
    finally:
        # The Inspector kills its server a few seconds after a call; one killed while vLLM was still
        # starting leaves the engine core behind, which the next start in this data dir ends (and so do we).
        reaper.reap_stale(tmp_path)


async def test_inspector_over_http(inspector: Path, wire_http: HttpServer) -> None:
    check_everything(inspector, [wire_http.url, "--transport", "http"])
