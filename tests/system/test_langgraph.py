"""examples/langgraph_agent.py runs end to end: a LangGraph graph over our tools (stdio, and HTTP with a token)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, SECURE_TOKENS, server_env
from tests.support.servers import HttpServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
EXAMPLE = [sys.executable, str(REPO / "examples" / "langgraph_agent.py")]


def check(state: dict) -> None:
    assert state["draft"] and state["review"], state
    assert len(state["variants"]) == 3 and state["best"] in [*state["variants"], state["draft"]]


def test_langgraph_example_over_stdio(tmp_path) -> None:
    done = subprocess.run(
        [*EXAMPLE, "What is a KV cache? Answer in two sentences."],
        capture_output=True,
        text=True,
        timeout=600,
        env=server_env(tmp_path),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    check(json.loads(done.stdout))


async def test_langgraph_example_over_http_with_a_token(secure_http: HttpServer) -> None:
    """Against the session's token-guarded server (conftest), as client carol."""
    token = SECURE_TOKENS["carol"]
    done = subprocess.run(
        [*EXAMPLE, "--http", secure_http.url, "--token", token, "Name three uses of embeddings."],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    check(json.loads(done.stdout))


async def test_langgraph_tool_agent_decides_with_the_local_model(secure_http: HttpServer) -> None:
    """The tool-using agent: our engine picks the tool and its arguments, the graph runs it, our engine answers."""
    agent = [sys.executable, str(REPO / "examples" / "langgraph_tool_agent.py")]
    done = subprocess.run(
        [*agent, "--http", secure_http.url, "--token", SECURE_TOKENS["carol"], "What is the weather in Oslo?"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(done.stdout)
    assert state["calls"] and state["answer"], state
    assert [t["role"] for t in state["turns"]][:2] == ["user", "assistant"] and state["turns"][-1]["role"] == "tool"
    for call in state["calls"]:
        assert call["name"] in ("get_weather", "add") and call["arguments"], call
