"""Engine processes outlive a server killed with SIGKILL (vLLM's engine core is a separate process).

The server records its engine's processes in the data dir; the next start in that data dir ends any
that are still alive once their server is gone, so a crash never leaves a second engine holding memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from mcp_llm.background import repeating

log = logging.getLogger(__name__)
PIDFILE = "engine-processes.json"


def _identity(proc: psutil.Process) -> list:
    return [proc.pid, proc.create_time()]


def _alive(pid: int, created: float) -> psutil.Process | None:
    """The process, if that pid still belongs to the process that was recorded."""
    try:
        proc = psutil.Process(pid)
        return proc if abs(proc.create_time() - created) < 0.01 else None
    except psutil.NoSuchProcess:
        return None


def record(data_dir: Path) -> None:
    """Write this server's pid and its engine processes' pids."""
    me = psutil.Process()
    entry = {"server": _identity(me), "engine": [_identity(p) for p in me.children(recursive=True)]}
    (data_dir / PIDFILE).write_text(json.dumps(entry))


@contextlib.asynccontextmanager
async def recording(data_dir: Path, interval_s: float = 0.5) -> AsyncIterator[None]:
    """Keep the record current while an engine starts: a server killed mid-start (a client that gives up
    and SIGKILLs it) leaves vLLM's half-started engine core behind, and the next start must find it."""

    async def keep() -> None:
        record(data_dir)

    async with repeating(keep, interval_s):
        yield
    record(data_dir)


def clear(data_dir: Path) -> None:
    (data_dir / PIDFILE).unlink(missing_ok=True)


def reap_stale(data_dir: Path) -> int:
    """End engine processes left behind by a dead server of this data dir; returns how many."""
    path = data_dir / PIDFILE
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    if _alive(*entry["server"]):
        log.warning("another server (pid %d) is running with this data dir", entry["server"][0])
        return 0
    stale = [p for p in (_alive(*e) for e in entry["engine"]) if p is not None]
    for proc in stale:
        proc.kill()
    psutil.wait_procs(stale, timeout=10)
    if stale:
        log.warning("ended %d engine processes left by a server that died", len(stale))
    path.unlink(missing_ok=True)
    return len(stale)
