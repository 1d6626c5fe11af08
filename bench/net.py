"""Network helpers for the benchmarks and the tests that run the server (or vLLM's) as a subprocess."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 600.0  # engine start on a busy 2-core machine


def free_port() -> int:
    """A TCP port free on localhost right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 15) -> str:
    """The end of a server log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> dict[str, Any]:
    """Poll `GET /health` until 200; fail if the server exits or the start takes too long."""
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited ({proc.returncode}) during start:\n{log_tail(log_path)}")
            try:
                response = await http.get(url, timeout=2)
                if response.status_code == 200:
                    return response.json()
                if response.json().get("status") == "failed":
                    raise RuntimeError(f"the server's engine failed to start: {response.json().get('detail')}")
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"server not healthy after {START_TIMEOUT_S:.0f} s:\n{log_tail(log_path)}")
