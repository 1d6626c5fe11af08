"""Helpers for tests that run the server as a subprocess."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.conftest import REPO, SERVER_CMD, server_env
from tests.support.net import free_port, wait_healthy

__all__ = [
    "START_TIMEOUT_S",
    "HttpServer",
    "assert_all_gone",
    "descendants",
    "http_server",
    "start_fails",
    "wait_healthy",
]

START_TIMEOUT_S = 240


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_all_gone(processes: list[psutil.Process], timeout: float = 30) -> None:
    """No process the server started (engine core, workers) outlives it."""
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"orphans left behind: {[(p.pid, p.name()) for p in alive]}"


@dataclass
class HttpServer:
    """A running `server.py --transport http` subprocess."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"


@asynccontextmanager
async def http_server(data_dir: Path, *flags: str, **env: str) -> AsyncIterator[HttpServer]:
    """Start an HTTP server on a free port with its own data dir, wait until /health says ready, and
    stop it with SIGTERM afterwards (killed if it hangs)."""
    port = free_port()
    log = data_dir / "server.log"
    cmd = [*SERVER_CMD, "--transport", "http", "--host", "127.0.0.1", "--port", str(port), *flags]
    with log.open("w") as errlog:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=errlog, env=server_env(data_dir, **env), cwd=REPO
        )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/health", proc, log)
        yield HttpServer(proc, port, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_fails(data_dir: Path, *flags: str, **env: str) -> str:
    """Run `server.py` with flags/env that must stop it at start; assert it exited nonzero, return its stderr."""
    result = subprocess.run(
        [*SERVER_CMD, *flags], capture_output=True, text=True, env=server_env(data_dir, **env), cwd=REPO, timeout=60
    )
    assert result.returncode != 0, result.stderr[-2000:]
    return result.stderr
