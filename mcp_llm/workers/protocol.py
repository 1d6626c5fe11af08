"""The worker side of the JSON-lines protocol (standard library only).

The server writes one JSON job spec to the worker's stdin; the worker writes JSON lines to stdout:
`{"progress": p, "total": t, "message": m}` any number of times, then one `{"result": {...}}` or
`{"error": "...", "kind": "input" | "failed"}`. Everything else (library logs, prints) goes to stderr:
`serve` points file descriptor 1 at stderr and keeps a private copy for the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TextIO


class JobInputError(ValueError):
    """The job spec must change (reported to the caller as an input error)."""


class Channel:
    """Protocol writer over a private duplicate of the original stdout."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def send(self, **message: Any) -> None:
        self._stream.write(json.dumps(message) + "\n")
        self._stream.flush()

    def progress(self, progress: float, total: float | None = None, message: str = "") -> None:
        self.send(progress=progress, total=total, message=message)


def serve(run: Callable[[dict, Channel], dict]) -> None:
    """Read the job from stdin, run it, report its result or error; exit 1 on error."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # whatever prints to stdout from here on lands on stderr
    sys.stdout = sys.stderr
    channel = Channel(os.fdopen(protocol_fd, "w", buffering=1))
    try:
        job = json.loads(sys.stdin.read())
        result = run(job, channel)
    except JobInputError as exc:
        channel.send(error=str(exc), kind="input")
        sys.exit(1)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        channel.send(error=f"{type(exc).__name__}: {exc}", kind="failed")
        sys.exit(1)
    channel.send(result=result)
