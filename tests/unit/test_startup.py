"""Start-up: the handshake is answered before (and without) vLLM, and calls that wait for the engine (start, swap,
restart) get keep-alive progress naming what they wait for. `bench/startup.py` measures the times."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_llm.core.services import Runtime
from mcp_llm.engine.base import EngineState
from mcp_llm.engine.local import start_phase
from mcp_llm.engine.swap import EngineSpec, SwappableEngine
from mcp_llm.server.tools.common import report_progress, tool_errors
from tests.conftest import REPO, SERVER_CMD, server_env

pytestmark = pytest.mark.anyio

KEEP_ALIVE = re.compile(r"^engine starting(: [^,]+)?, \d+ s so far$")


class FakeContext:
    """What `tool_errors` uses of a tool's Context: the lifespan's Runtime and progress notifications."""

    def __init__(self, runtime: Runtime) -> None:
        self.request_context = SimpleNamespace(lifespan_context=runtime)
        self.progress: list[tuple[float, float | None, str]] = []

    async def report_progress(self, done: float, total: float | None, message: str) -> None:
        self.progress.append((done, total, message))


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


def test_start_phase_is_read_from_vllms_log() -> None:
    assert start_phase("INFO ... some setup line\n") is None
    loading = "INFO [cpu_model_runner.py:68] Starting to load model /m/SmolLM2...\n"
    assert start_phase(loading) == "loading weights"
    loaded = loading + "INFO [default_loader.py:502] Loading weights took 0.61 seconds\n"
    assert start_phase(loaded) == "compiling/profiling"
    done = loaded + "INFO [core.py:403] init engine (profile, create kv cache, warmup model) took 9.10 s\n"
    assert start_phase(done) == "finishing start"


async def test_a_call_waiting_for_the_engine_start_gets_keep_alive_progress() -> None:
    runtime = Runtime(progress_interval_s=0.05)
    runtime.phase.set("loading weights")
    ctx = FakeContext(runtime)

    @tool_errors
    async def tool(ctx: FakeContext) -> str:
        return "ran"

    call = asyncio.create_task(tool(ctx=ctx))
    await asyncio.sleep(0.3)
    assert not call.done()
    runtime.set(EngineState.READY, SimpleNamespace())  # type: ignore[arg-type]
    assert await call == "ran"
    assert len(ctx.progress) >= 3
    assert all(KEEP_ALIVE.match(message) for _, _, message in ctx.progress), ctx.progress
    assert ctx.progress[0][2].startswith("engine starting: loading weights, ")
    values = [done for done, _, _ in ctx.progress]
    assert values == sorted(values) and len(set(values)) == len(values)  # progress increases


async def test_progress_rises_from_the_keep_alives_through_the_tools_own_reports() -> None:
    """The protocol wants each notification's progress above the last: keep-alives before the tool's own
    `done/total` reports shift those by one, and a repeated value (nothing finished) still rises."""
    runtime = Runtime(progress_interval_s=0.05)
    ctx = FakeContext(runtime)

    @tool_errors
    async def tool(ctx: FakeContext) -> str:
        for done in (0, 0, 1, 1, 1, 2):
            await report_progress(ctx, done, 2, f"{done}/2")  # type: ignore[arg-type]
        return "ran"

    call = asyncio.create_task(tool(ctx=ctx))
    await asyncio.sleep(0.2)
    serving = SimpleNamespace(engine=SimpleNamespace(waiting_for=lambda: None))
    runtime.set(EngineState.READY, serving)  # type: ignore[arg-type]
    assert await call == "ran"
    values = [done for done, _, _ in ctx.progress]
    assert len(values) >= 8 and all(b > a for a, b in itertools.pairwise(values)), values
    own = ctx.progress[-6:]
    assert [total for _, total, _ in own] == [3] * 6  # done + 1 of total + 1 after keep-alives
    assert own[0][0] == 1 and own[2][0] == 2 and own[-1][0] == 3  # the whole steps land where they should


class FakeEngine:
    backend = "local"

    def __init__(self, name: str) -> None:
        self.model_name = name
        self.state = EngineState.READY

    async def generate(self, *args: object, **kwargs: object) -> SimpleNamespace:
        return SimpleNamespace(finish_reason="stop", text=self.model_name)

    async def shutdown(self, drain_timeout_s: float) -> None:
        self.state = EngineState.STOPPED

    def tokenize_text(self, text: str) -> list[int]:
        return [1, 2, 3]


async def test_a_request_held_by_a_swap_gets_keep_alive_progress() -> None:
    async def starter(spec: EngineSpec) -> FakeEngine:
        engine.phase.set("loading weights")
        await asyncio.sleep(0.4)
        return FakeEngine(spec.name)

    engine = SwappableEngine(FakeEngine("old"), EngineSpec("old", {}), starter)  # type: ignore[arg-type]
    runtime = Runtime(progress_interval_s=0.05)
    runtime.set(EngineState.READY, SimpleNamespace(engine=engine))  # type: ignore[arg-type]
    ctx = FakeContext(runtime)

    @tool_errors
    async def tool(ctx: FakeContext) -> str:
        return (await engine.generate([1], None, "r")).text  # type: ignore[arg-type]

    swap = asyncio.create_task(engine.swap(EngineSpec("new", {}), 0))
    await asyncio.sleep(0.01)
    assert await tool(ctx=ctx) == "new"
    await swap
    messages = [message for _, _, message in ctx.progress]
    assert messages and all(m.startswith("model swap to new: ") for m in messages), messages
    assert any(m.startswith("model swap to new: loading weights, ") for m in messages), messages
    assert runtime.waiting_for() is None  # the gate is open again


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
