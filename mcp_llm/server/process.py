"""How a server process runs: its logs on stderr (stdout is the stdio transport's), uvloop under its event loop."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys


def log_to_stderr(level: str) -> None:
    """Our logs and vLLM's (its engine-core process inherits the setting) on stderr."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per remote request otherwise


def loop_options() -> dict[str, bool]:
    """uvloop's event loop where it is installed (it comes with vLLM): every socket read, future and callback of
    the serving loop costs less than on asyncio's own loop."""
    return {"use_uvloop": importlib.util.find_spec("uvloop") is not None}
