"""Helpers for tests that run the server as a subprocess."""

from __future__ import annotations

import subprocess
import time

import anyio
import httpx
import psutil

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


async def wait_healthy(url: str, proc: subprocess.Popen) -> dict:
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, "server exited during start"
            try:
                response = await http.get(url, timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            await anyio.sleep(0.5)
    raise AssertionError("server never became healthy")
