"""`--api-server-count N`: N front-end processes over one in-process engine, as vLLM's own server spreads its HTTP
side over processes (docs/scaling.md). One event loop carries every call's MCP, HTTP and JSON work; N of them carry
N times as much, while the engine core (one process, vLLM's scheduler) stays one.

The parent (this module, under the data dir's engine lock) binds the port once, starts vLLM's engine core and then
the front-ends; each front-end is a whole server over stateless Streamable HTTP (any of them may take any request
of a session) with its own `AsyncLLM` client, sharing the data dir as replicas do (job leases, one set of
`--request-state-keys`). Engine-changing tools (`load_model`, `quantize`, `tune_serving`, benchmark variants) are
refused in a front-end; in-flight bounds apply per front-end, and the job window is each front-end's share of the
engine's seats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import secrets
import shutil
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

from mcp_llm.core import shared_metrics
from mcp_llm.core.services import resolve_model
from mcp_llm.core.store import Store
from mcp_llm.engine import reaper, shared_core
from mcp_llm.server import http
from mcp_llm.server.app import create_app
from mcp_llm.server.process import log_to_stderr, loop_options

if TYPE_CHECKING:
    from mcp_llm.core.access import Principal
    from mcp_llm.settings import Settings

log = logging.getLogger("mcp_llm")


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot run several front-ends, None when they can (or run one)."""
    if settings.api_server_count == 1:
        return None
    if settings.transport != "http" or settings.backend != "local":
        return "--api-server-count above 1 needs --transport http and the in-process engine (--backend local)"
    if settings.embedding_model:
        return "--api-server-count above 1 with --embedding-model would start an embedding engine per front-end"
    return None


def shared_settings(settings: Settings) -> Settings:
    """Every front-end's settings: stateless HTTP and one set of request-state keys (made here when none given)."""
    keys = settings.request_state_keys or [secrets.token_hex(32)]
    return settings.model_copy(update={"stateless_http": True, "request_state_keys": keys})


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket every front-end serves on (the kernel hands each connection to one of them)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)  # connections made while the front-ends start wait here instead of being refused
    return sock


def serve_front_ends(settings: Settings, tokens: dict[str, Principal]) -> None:
    """Start the engine core and `api_server_count` front-ends; stop them all when one ends or on SIGINT/SIGTERM."""
    from mcp_llm.engine import local

    settings = shared_settings(settings)
    sock = bound_socket(settings.host, settings.port)
    asyncio.run(local.import_vllm())
    name, path = resolve_model(settings)
    args = local.engine_args_of(local.serving_args(settings.engine_args(path), name, settings.engine_log))
    spawn = multiprocessing.get_context("spawn")

    def start(client: dict[str, Any]) -> Any:
        index = client["client_index"]
        proc = spawn.Process(
            target=_front_end, args=(settings, tokens, client, sock), name=f"mcp-llm front-end {index}"
        )
        proc.start()
        return proc

    reaper.reap_stale(settings.data_dir)
    shutil.rmtree(settings.data_dir / shared_metrics.FOLDER, ignore_errors=True)  # an earlier run's front-ends
    Store(settings.database).close()  # migrated here once: front-ends migrating at once would find it locked
    log.info(
        "serving Streamable HTTP at http://%s:%d/mcp with %d front-end processes over one engine",
        settings.host,
        settings.port,
        settings.api_server_count,
    )
    try:
        with shared_core.engine_core(args, settings.api_server_count, start) as (procs, engine):
            reaper.record(settings.data_dir)
            failure = _until_one_ends(procs, engine, settings.drain_timeout_s + 30)
    finally:
        reaper.clear(settings.data_dir)
        sock.close()
    if failure:
        raise SystemExit(f"mcp-llm: {failure}; every front-end and the engine core were stopped")


def _until_one_ends(procs: list[Any], engine: list[Any], stop_timeout_s: float) -> str | None:
    """Wait until a front-end or the engine core ends, or a signal asks to stop; then stop the front-ends
    (SIGTERM: they drain). What ended, when it was not asked to."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    sentinels = [p.sentinel for p in procs] + engine
    try:
        while not stop.is_set() and not multiprocessing.connection.wait(sentinels, timeout=0.5):
            pass
        failure = None
        if not stop.is_set():
            ended = [p for p in procs if not p.is_alive()]
            failure = f"{ended[0].name} ended (exit code {ended[0].exitcode})" if ended else "the engine core ended"
            log.error("%s: stopping the front-ends", failure)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(stop_timeout_s)
            if proc.is_alive():
                proc.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return failure


def _front_end(settings: Settings, tokens: dict[str, Principal], client: dict[str, Any], sock: socket.socket) -> None:
    """One front-end process: the whole server over stateless HTTP on the shared socket, attached to the engine."""
    import anyio

    log_to_stderr(settings.log_level)
    app = create_app(settings, tokens=tokens, client=client)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(http.serve, app, settings, sock, backend_options=loop_options())
