"""Schema-driven fuzzing of every tool over a real stdio session and a real HTTP session (hypothesis).

Each tool gets arguments generated from its published inputSchema (kept cheap: few tokens, few items) and
deliberately outside it (wrong types, missing and extra fields, huge/empty/control/unicode strings, NaN and
infinities, numbers past int64, deep nesting, oversized lists). Every reply must be a result or an isError
with a message; afterwards the server still answers a plain `generate` and no engine request is left running.
MCP_LLM_FUZZ_CALLS sets the calls per transport (1,000 by default; e.g. 20000 for a nightly-sized run).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mcp_llm.server.app import create_app
from mcp_llm.settings import Settings
from tests.support.fuzzing import (
    CAPITAL,
    RawHttp,
    RawStdio,
    ToolFuzz,
    call_strategy,
    check_reply,
    short,
    wait_idle,
)
from tests.support.servers import HttpServer

pytestmark = pytest.mark.anyio

CALLS = int(os.environ.get("MCP_LLM_FUZZ_CALLS", "1000"))
GROUP = 8  # calls sent at once per example (the server runs them concurrently)
FUZZ = settings(
    max_examples=-(-CALLS // GROUP),
    derandomize=True,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a hang would be replayed for minutes; the report
    # names the failing call's arguments
    suppress_health_check=list(HealthCheck),
)


class Tally:
    """What a fuzz run sent and got back, per tool."""

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.per_tool: Counter[str] = Counter()
        self.slowest: list[tuple[float, list[tuple[str, Any]]]] = []

    def timed(self, seconds: float, calls: list[tuple[str, Any]]) -> None:
        self.slowest = sorted([*self.slowest, (seconds, calls)], key=lambda s: -s[0])[:3]

    def add(self, replies: list[dict], calls: list[tuple[str, Any]]) -> None:
        for reply, (name, args) in zip(replies, calls, strict=True):
            self.errors += check_reply(reply, name, args)
            self.calls += 1
            self.per_tool[name] += 1

    def line(self, transport: str) -> str:
        slow = "; ".join(f"{s:.1f}s: {[(n, short(a, 120)) for n, a in c]}" for s, c in self.slowest)
        return (
            f"slowest groups: {slow}\n"
            f"fuzz {transport}: {self.calls} calls over {len(self.per_tool)} tools, "
            f"{self.calls - self.errors} results, {self.errors} isError"
        )


@pytest.fixture(scope="package")
def stdio(wire_stdio: RawStdio) -> RawStdio:
    """The session's shared stdio server (conftest)."""
    return wire_stdio


@pytest.fixture(scope="package")
def http(wire_http: HttpServer) -> HttpServer:
    """The session's shared HTTP server (conftest)."""
    return wire_http


def tool_list(request: Any) -> list[dict]:
    return request("tools/list")["result"]["tools"]


def assert_still_serving(request: Any, alive: bool) -> None:
    """The server is up, answers a plain generate correctly, and no engine request is left running."""
    assert alive, "the server process died"
    reply = request("tools/call", {"name": "generate", "arguments": CAPITAL})
    assert not reply["result"].get("isError"), reply
    assert "Paris" in reply["result"]["structuredContent"]["text"]

    def read(uri: str) -> dict:
        return request("resources/read", {"uri": uri})

    assert wait_idle(read) == 0, "engine requests left running after the fuzz"


@pytest.fixture(scope="module")
def published_tools(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """tools/list as the server publishes it (no engine needed to list)."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("fuzz-schemas")))
    with ThreadPoolExecutor(1) as thread:  # its own event loop: the session's may be running in this thread
        tools = thread.submit(anyio.run, app.list_tools).result()
    return [{"name": t.name, "inputSchema": t.input_schema} for t in tools]


def test_strategies_follow_the_published_schemas(published_tools: list[dict]) -> None:
    """Valid arguments validate against each tool's inputSchema; for the tools that must never run (swaps,
    training, benchmarks, flows) every generated call is refused by that schema."""
    assert len(published_tools) >= 20
    for tool in published_tools:
        fuzz = ToolFuzz(tool)
        seen = check_strategy(fuzz, jsonschema.Draft202012Validator(tool["inputSchema"]))
        takes_any_object = not fuzz.properties and fuzz.schema.get("additionalProperties", True) is not False
        assert seen[False] > 0 or takes_any_object, f"{fuzz.name}: no invalid calls generated"
        assert seen[True] > 0 or not fuzz.safe, f"{fuzz.name}: no valid calls generated"


def check_strategy(fuzz: ToolFuzz, validator: Any) -> Counter[bool]:
    """How many generated calls the schema takes (True) and refuses (False); unsafe tools must be refused."""
    seen: Counter[bool] = Counter()

    @settings(FUZZ, max_examples=30)
    @given(call=fuzz.calls())
    def check(call: tuple[str, Any]) -> None:
        valid = validator.is_valid(call[1])
        seen[valid] += 1
        assert fuzz.safe or not valid, f"{fuzz.name} would run: {short(call[1])}"

    check()
    return seen


@pytest.mark.slow
def test_fuzz_stdio(stdio: RawStdio) -> None:
    tally = Tally()
    tools = tool_list(stdio.request)
    strategy = st.lists(call_strategy(tools), min_size=GROUP, max_size=GROUP)

    @FUZZ
    @given(calls=strategy)
    def run(calls: list[tuple[str, Any]]) -> None:
        started = time.monotonic()
        tally.add(stdio.call_many(calls), calls)
        tally.timed(time.monotonic() - started, calls)

    run()
    print(tally.line("stdio"), dict(tally.per_tool))
    assert tally.calls >= CALLS
    assert 0 < tally.errors < tally.calls, "both results and tool errors are expected"
    assert not stdio.stray, f"non-JSON-RPC output on stdout: {stdio.stray[:3]}"
    assert_still_serving(stdio.request, stdio.alive())


@pytest.mark.slow
async def test_fuzz_http(http: HttpServer) -> None:
    client = RawHttp(http.url)
    client.initialize()
    tally = Tally()
    tools = tool_list(client.request)
    strategy = st.lists(call_strategy(tools), min_size=GROUP, max_size=GROUP)
    with ThreadPoolExecutor(GROUP) as pool:

        @FUZZ
        @given(calls=strategy)
        def run(calls: list[tuple[str, Any]]) -> None:
            started = time.monotonic()
            tally.add(client.call_many(calls, pool), calls)
            tally.timed(time.monotonic() - started, calls)

        run()
    print(tally.line("http"), dict(tally.per_tool))
    assert tally.calls >= CALLS
    assert 0 < tally.errors < tally.calls
    assert_still_serving(client.request, http.proc.poll() is None)
    client.close()
    log = http.log.read_text()
    assert "Exception in ASGI application" not in log, log[-3000:]
