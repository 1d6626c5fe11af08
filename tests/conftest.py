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
    from tests.support.schemas import Listener

REPO = Path(__file__).resolve().parent.parent
# Every test engine (in-process, and every server subprocess through the inherited environment) takes a 512 MiB KV
# cache (~11k tokens of the default model, plenty for the tests' short calls) instead of the CPU default of 2 GiB:
# the two pytest-xdist workers' engines then fit beside each other in 24 GiB.
os.environ.setdefault("MCP_LLM_KV_CACHE_MEMORY_BYTES", str(512 << 20))
# Every test engine computes in float32, as the remote (REMOTE_ARGS) does: on a CPU with bf16 instructions `auto`
# is vLLM's bf16, whose rounding turned the default model's greedy answers (and the two backends' logprobs) into
# other ones than on a CPU without them (CI of 1 Dec: "L'Étoile, la Marseillaise" for the capital of France).
os.environ.setdefault("MCP_LLM_DTYPE", "float32")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under `pytest -n N`; None in a plain run
if WORKER:
    # vLLM's CPU backend binds every engine's compute threads to core 0 unless told otherwise: each worker's
    # engines take their own core, so two workers' decode steps do not queue for one core.
    cores = sorted(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", str(cores[int(WORKER.removeprefix("gw")) % len(cores)]))
    # One compute thread per process (training, quantizing): two workers' torch pools of one thread per core each
    # thrashed (an adapter's training took 570-900 s beside the other worker's instead of ~90 s alone).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# Models are made once per machine (the default model store); databases live in per-test temp dirs.
MODELS_DIR = Settings().model_store
# The remote vLLM runs as the in-process engine does in tests: eager, float32, 2048 context, the
# priority scheduler (our remote backend then sends each request's priority: --scheduling-policy priority).
REMOTE_ARGS = ("--enforce-eager", "--dtype", "float32", "--max-model-len", "2048", "--scheduling-policy", "priority")


SYSTEM = Path(__file__).resolve().parent / "system"


# Modules that share a session-scoped server (`vllm_remote`, `wire_http`/`wire_stdio`, `secure_http`): under
# pytest-xdist each group runs on one worker, so each server starts once; every other module is its own unit.
SHARED_GROUPS = {
    "remote": (
        *("integration/test_backends", "integration/test_remote", "integration/test_schema_safety"),
        "system/test_replicas",
    ),
    "wire": ("system/test_fuzz", "system/test_protocol_garbage", "system/test_conformance", "system/test_inspector"),
    "secure": ("system/test_http_security", "system/test_langgraph"),
}
SHARED_MODULES = {module: group for group, modules in SHARED_GROUPS.items() for module in modules}
WHOLE_MODULES = ("system/test_wheel",)  # other system modules whose tests share a module-scoped fixture
SHARED_FIXTURES = ("vllm_remote", "wire_http", "wire_stdio", "secure_http")
TIERS = ("system", "integration", "unit")  # the order workers take modules in: the longest tests first


def module_key(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`pytest -n 2`: whole modules (or SHARED_MODULES' groups) per worker, taken in collection order; the system
    tier's tests one by one."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = module_key(Path(nodeid.split("::", 1)[0]))
            if module.startswith("system/") and module not in (*SHARED_MODULES, *WHOLE_MODULES):
                return nodeid  # each system test starts its own servers: the two halves of a module run at once
            return SHARED_MODULES.get(module, module)

    config.option.loadscopereorder = False  # keep TIERS' order rather than the largest modules first
    return ModuleGroups(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/system `slow` (`make test-quick` deselects them), unless it already is; check
    that SHARED_MODULES names every module using a shared server; put the tiers in TIERS' order."""
    for item in items:
        if item.path.resolve().is_relative_to(SYSTEM) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
        shared = set(getattr(item, "fixturenames", ())) & set(SHARED_FIXTURES)
        if shared and module_key(item.path) not in SHARED_MODULES:
            raise pytest.UsageError(f"{item.path.name} uses {sorted(shared)}: add it to SHARED_MODULES in conftest.py")
    items.sort(key=lambda item: TIERS.index(item.path.parent.name) if item.path.parent.name in TIERS else 0)


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


SECURE_TOKENS = {"alice": "tok-alice-1", "bob": "tok-bob-2", "carol": "tok-carol-3"}
SECURE_ADMIN = ("ops", "tok-ops-4")  # reads /health's details


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
