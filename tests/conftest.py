"""Shared fixtures: one real engine (default model, eager) for the whole session, real MCP clients.

The tests come in three tiers: tests/unit (no engine, no subprocess), tests/integration (the session's shared
in-process engine, `services`/`app`/`client`, and the remote backend's `vllm_remote`), tests/system (server and
vLLM subprocesses, examples, the Inspector, the conformance suite). Every system test is marked `slow`."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from bench.vllm_server import VllmServer
from mcp_llm.core.services import Services, open_services
from mcp_llm.server.app import create_app
from mcp_llm.settings import Settings
from tests.support.net import free_port

if TYPE_CHECKING:
    from tests.support.fuzzing import RawStdio
    from tests.support.schemas import Listener
    from tests.support.servers import HttpServer

REPO = Path(__file__).resolve().parent.parent
# Models are made once per machine (the default model store); databases live in per-test temp dirs.
MODELS_DIR = Settings().model_store
# The remote vLLM runs as the in-process engine does in tests: eager, float32 (no bf16 here), 2048 context, the
# priority scheduler (our remote backend then sends each request's priority: --scheduling-policy priority).
REMOTE_ARGS = ("--enforce-eager", "--dtype", "float32", "--max-model-len", "2048", "--scheduling-policy", "priority")


SYSTEM = Path(__file__).resolve().parent / "system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/system `slow` (`make test-quick` deselects them), unless it already is."""
    for item in items:
        if item.path.resolve().is_relative_to(SYSTEM) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (marked anyio per module) share the session's one event loop, where the engine lives."""
    return "asyncio"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        models_dir=MODELS_DIR,
        max_model_len=2048,
        max_num_seqs=32,  # two engine batches (fair-serving tests queue past one) cost an eighth of vLLM's 256
        drain_timeout_s=5,
        progress_interval_s=0.1,
        embedding_model="default",  # `embed` is tested against the bundled all-MiniLM-L6-v2
        enable_lora=True,  # adapters are trained and served in the session
        max_loras=4,
        max_lora_rank=16,
    )


@pytest.fixture(scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as svc:
        yield svc


@pytest.fixture(scope="session")
def app(settings: Settings, services: Services) -> MCPServer:
    return create_app(settings, shared=services)


@pytest.fixture(scope="session")
def vllm_remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """vLLM's own OpenAI server with the default model on loopback: the remote end of `--backend openai`."""
    from mcp_llm import default_model

    path = default_model.ensure_prepared(MODELS_DIR)
    log = tmp_path_factory.mktemp("vllm-remote") / "vllm.log"
    server = VllmServer(str(path), default_model.MODEL_NAME, free_port(), log, *REMOTE_ARGS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def remote_services(vllm_remote: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Services]:
    """Our services with the remote backend, forwarding to `vllm_remote`."""
    remote = Settings(
        backend="openai",
        base_url=vllm_remote.url,
        data_dir=tmp_path_factory.mktemp("remote-data"),
        models_dir=MODELS_DIR,
        drain_timeout_s=5,
        progress_interval_s=0.1,
        remote_stats_interval_s=0.25,
        scheduling_policy="priority",  # the remote runs it (REMOTE_ARGS): batch items go as bulk there too
    )
    async with open_services(remote) as svc:
        yield svc


@pytest.fixture(scope="session")
def remote_app(remote_services: Services) -> MCPServer:
    return create_app(remote_services.settings, shared=remote_services)


@pytest.fixture(scope="session")
async def wire_http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HttpServer]:
    """One `server.py --transport http` subprocess (its own engine, a small KV cache) shared by the tests that only
    speak to a server over the wire (fuzzing, protocol garbage, conformance, Inspector): each engine start costs
    30-60 s on 2 cores, and these tests assert that the server keeps serving after what they send."""
    from tests.support.fuzzing import SMALL_KV
    from tests.support.servers import http_server

    async with http_server(tmp_path_factory.mktemp("wire-http"), **SMALL_KV) as server:
        yield server


SECURE_TOKENS = {"alice": "tok-alice-1", "bob": "tok-bob-2", "carol": "tok-carol-3"}
SECURE_ADMIN = ("ops", "tok-ops-4")  # reads /health's details


@pytest.fixture(scope="session")
async def secure_http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HttpServer]:
    """One HTTP server that requires bearer tokens (SECURE_TOKENS), with tight in-flight bounds (1 per client,
    2 in total) and a 64 KiB body limit: the HTTP security tests, and the LangGraph example with a token."""
    from tests.support.servers import http_server

    tokens = ",".join(f"{client}:{token}" for client, token in SECURE_TOKENS.items())
    tokens += f",{SECURE_ADMIN[0]}:{SECURE_ADMIN[1]}:admin"
    flags = ["--auth-tokens", tokens, "--max-inflight-per-client", "1", "--max-inflight-total", "2"]
    async with http_server(tmp_path_factory.mktemp("secure"), *flags, "--max-request-body-bytes", "65536") as s:
        yield s


@pytest.fixture(scope="session")
def wire_stdio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawStdio]:
    """One `server.py` over stdio, initialized and serving, shared the same way (fuzzing, protocol garbage)."""
    from tests.support.fuzzing import stdio_server

    with stdio_server(tmp_path_factory.mktemp("wire-stdio")) as server:
        yield server


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A real listening socket on loopback for hostile `$ref`s to point at (tests.support.schemas)."""
    from tests.support.schemas import Listener

    server = Listener()
    yield server
    server.close()


@pytest.fixture
async def client(app: MCPServer) -> AsyncIterator[Client]:
    async with Client(app) as c:
        yield c


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a server subprocess: its own data dir, the shared model store."""
    env = dict(os.environ)
    env.update(
        {"MCP_LLM_DATA_DIR": str(data_dir), "MCP_LLM_MODELS_DIR": str(MODELS_DIR), "PYTHONUNBUFFERED": "1"}, **extra
    )
    return env


SERVER_CMD = [sys.executable, str(REPO / "server.py")]
