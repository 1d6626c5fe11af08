"""Server side of the worker protocol: run a `mcp_llm.workers.<name>` module in the worker venv.

Generic for any worker (quantize, train, merge): pass the job spec, get progress callbacks and the
result dict; a crash, a timeout, a nonzero exit or a cancelled call become clear errors, and the worker
process (group) is killed whenever the call does not end normally. Imports nothing heavy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from mcp_llm.errors import InputError, Unavailable

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent.parent  # the mcp_llm package (in a checkout, or a site-packages)
REPO = PACKAGE.parent
STDERR_TAIL = 2000  # characters of the worker's stderr quoted in a crash report

Progress = Callable[[float, float | None, str], Awaitable[None]]


class WorkerError(Unavailable):
    """The worker crashed, timed out or reported a failure; the message says which and why."""


@functools.cache
def import_root() -> Path:
    """A folder holding only `mcp_llm` (a link to this package), put on the worker's PYTHONPATH: from a wheel the
    package's parent is the server's site-packages, whose torch and friends must not shadow the worker venv's."""
    root = Path(tempfile.mkdtemp(prefix="mcp-llm-worker-path-"))
    (root / "mcp_llm").symlink_to(PACKAGE, target_is_directory=True)
    return root


SECRET_NAMES = re.compile(
    r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_KEY|CREDENTIAL|PRIVATE|^MCP_LLM_(AUTH|OAUTH|REQUEST_STATE)"
)


def scrubbed(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without anything secret-looking (tokens, keys, passwords, our auth settings): a worker
    runs third-party training and quantization code, which needs none of them."""
    return {name: value for name, value in environ.items() if not SECRET_NAMES.search(name.upper())}


def default_worker_python() -> Path:
    """The worker venv's interpreter made by scripts/setup.sh (`.venv-worker` at the repo root)."""
    return REPO / ".venv-worker" / "bin" / "python"


async def run_worker(
    module: str,
    job: dict[str, Any],
    *,
    python: Path,
    timeout_s: float,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Run `python -m mcp_llm.workers.<module>` with `job` on stdin; return its result.

    Raises InputError when the worker rejected the job, WorkerError when it crashed, exited without
    a result, or ran past `timeout_s`. Cancelling the caller kills the worker.
    """
    if not python.is_file():
        raise WorkerError(
            f"The worker interpreter {python} does not exist: run `make setup` in a checkout (it creates "
            ".venv-worker), or set --worker-python (MCP_LLM_WORKER_PYTHON) to a Python that has llm-compressor."
        )
    env = {**scrubbed(os.environ), "PYTHONPATH": str(import_root()), "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        str(python),
        "-m",
        f"mcp_llm.workers.{module}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: killing it ends its children too
        limit=1 << 24,
    )
    stderr_tail: list[str] = []
    stderr_task = asyncio.create_task(_drain_stderr(proc, module, stderr_tail))
    try:
        async with asyncio.timeout(timeout_s):
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it exited early: its code says why
                proc.stdin.write(json.dumps(job).encode())
                await proc.stdin.drain()
                proc.stdin.close()
            outcome = await _read_messages(proc, on_progress)
            code = await proc.wait()
    except TimeoutError:
        _kill(proc)
        raise WorkerError(
            f"The {module} worker ran past its {timeout_s:.0f} s limit and was stopped: raise worker_timeout_s."
        ) from None
    except BaseException:
        _kill(proc)
        raise
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stderr_task, 5)
    tail = "".join(stderr_tail)[-STDERR_TAIL:]
    if outcome is None or (code != 0 and "error" not in outcome):
        raise WorkerError(f"The {module} worker exited with code {code} without a result. Its last output:\n{tail}")
    if "error" in outcome:
        if outcome.get("kind") == "input":
            raise InputError(outcome["error"])
        raise WorkerError(f"The {module} worker failed: {outcome['error']}")
    return outcome["result"]


async def _read_messages(proc: asyncio.subprocess.Process, on_progress: Progress | None) -> dict | None:
    """Forward progress lines; return the final result/error message (None when the worker sent none)."""
    assert proc.stdout is not None
    async for raw in proc.stdout:
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            log.warning("worker wrote a non-protocol line: %r", raw[:200])
            continue
        if "progress" in message:
            if on_progress is not None:
                await on_progress(message["progress"], message.get("total"), message.get("message", ""))
        elif "result" in message or "error" in message:
            return message
    return None


async def _drain_stderr(proc: asyncio.subprocess.Process, module: str, tail: list[str]) -> None:
    """Copy the worker's stderr to our log (stderr) and keep its end for error reports."""
    assert proc.stderr is not None
    async for raw in proc.stderr:
        line = raw.decode(errors="replace")
        tail.append(line)
        if len(tail) > 200:
            del tail[:100]
        sys.stderr.write(f"[{module} worker] {line}")


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
