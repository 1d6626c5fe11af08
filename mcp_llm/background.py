"""A step repeated in the background while a block of work runs (heartbeats, keeping a record current)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable


@contextlib.asynccontextmanager
async def repeating(step: Callable[[], Awaitable[None]], interval_s: float) -> AsyncIterator[None]:
    """Run `step` at once and then every `interval_s` until the block ends."""

    async def loop() -> None:
        while True:
            await step()
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
