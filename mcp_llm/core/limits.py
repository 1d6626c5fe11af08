"""Bounds on concurrent engine requests, per client and in total: past them a call is refused at once with
a "busy, retry" error instead of queueing without limit (batch jobs have their own bound, max_batch_items)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from mcp_llm.errors import Busy


class InflightLimiter:
    """Counts in-flight interactive requests; `slot(client)` admits one or raises Busy."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total, self.per_client = total, per_client
        self._counts: Counter[str] = Counter()
        self._inflight = 0
        self._last_end = float("-inf")  # monotonic time the last request ended

    @property
    def inflight(self) -> int:
        return self._inflight

    def quiet_for(self) -> float:
        """Seconds since the last interactive request ended; 0 while one is in flight."""
        return 0.0 if self._inflight else time.monotonic() - self._last_end

    @contextmanager
    def slot(self, client: str) -> Iterator[None]:
        if self._inflight >= self.total:
            raise Busy(
                f"Busy: {self._inflight} requests are in flight on this server (limit {self.total}); "
                "retry in a moment, or use `batch` for many prompts at once."
            )
        if self._counts[client] >= self.per_client:
            raise Busy(
                f"Busy: client {client!r} already has {self._counts[client]} requests in flight (limit "
                f"{self.per_client}); wait for some to finish and retry, or use `batch` for many prompts."
            )
        self._inflight += 1
        self._counts[client] += 1
        try:
            yield
        finally:
            self._last_end = time.monotonic()
            self._inflight -= 1
            self._counts[client] -= 1
            if not self._counts[client]:
                del self._counts[client]
