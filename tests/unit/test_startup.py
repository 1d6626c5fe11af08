"""Start-up without an engine: the start's phase is read from vLLM's log, and calls that wait for the engine
(start, swap, restart) get keep-alive progress naming what they wait for (fakes stand in for the engine). The
handshake answered before vLLM, by a real subprocess, is tests/system/test_handshake.py."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import anyio
import pytest

from mcp_llm.core.services import Runtime
from mcp_llm.engine.base import EngineState
from mcp_llm.engine.local import start_phase
from mcp_llm.engine.swap import EngineSpec, SwappableEngine
from mcp_llm.server.tools.common import report_progress, tool_errors
from tests.support.tasks import KEEP_ALIVE

pytestmark = pytest.mark.anyio


class FakeContext:
    """What `tool_errors` uses of a tool's Context: the lifespan's Runtime and progress notifications."""

    def __init__(self, runtime: Runtime) -> None:
        self.request_context = SimpleNamespace(lifespan_context=runtime)
        self.progress: list[tuple[float, float | None, str]] = []

    async def report_progress(self, done: float, total: float | None, message: str) -> None:
        self.progress.append((done, total, message))


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
    with anyio.fail_after(30):  # a loaded machine may be slow to send them: wait for three, however long
        while len(ctx.progress) < 3:
            await asyncio.sleep(0.02)
    assert not call.done()
    runtime.set(EngineState.READY, SimpleNamespace())  # type: ignore[arg-type]
    assert await call == "ran"
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
    # On a loaded machine one keep-alive may fall after the swap ended and before the call resumed: it says only
    # "waiting for the engine"; every other one names the swap.
    messages = [message for _, _, message in ctx.progress if not message.startswith("waiting for the engine, ")]
    assert messages and all(m.startswith("model swap to new: ") for m in messages), messages
    assert any(m.startswith("model swap to new: loading weights, ") for m in messages), messages
    assert runtime.waiting_for() is None  # the gate is open again
