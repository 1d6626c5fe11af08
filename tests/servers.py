"""Helpers for tests that run the server as a subprocess."""

from __future__ import annotations

import psutil

from mcp_llm.bench import wait_healthy

__all__ = ["START_TIMEOUT_S", "assert_all_gone", "descendants", "wait_healthy"]

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
