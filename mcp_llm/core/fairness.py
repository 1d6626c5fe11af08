"""Fair admission of bulk work: batch items enter the engine through a window of `capacity` slots shared by every
job, handed round-robin across clients. A job no longer puts all its items in the engine at once (an agent's
interactive call does not queue behind 10,000 of them, and 10,000 queued items are not 10,000 waiting coroutines),
and a client with three jobs gets no more of the engine than a client with one.

Slots are granted by a dispatcher that runs after the requests of the moment are queued (not on the spot), so two
jobs submitted together share the window from their first item instead of the first one taking all of it; while
several clients want slots, none holds more than its even part unless the others leave theirs unused.

The default window keeps a few engine seats free for interactive calls (vLLM does not preempt a running request
for a waiting one of higher priority, so a call arriving at a full engine waits for a bulk item to finish). Those
seats are lent to bulk work while no interactive call has run for `LEND_AFTER_S`: a job alone on the server uses the
whole engine, and once a call comes, no bulk item takes a freed seat until the bulk share is back inside the
window."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable

LEND_AFTER_S = 2.0  # the reserved seats go to bulk work once interactive calls have been quiet this long


class FairGate:
    """`window` slots (plus `spare` ones while `lending()` says no interactive call needs them); requests queue
    per client and are granted round-robin across clients."""

    def __init__(self, window: int, spare: int = 0, lending: Callable[[], bool] | None = None) -> None:
        self.window, self.spare = window, spare
        self.lending = lending or (lambda: False)
        self.used = 0
        self.peak = 0  # the most slots ever held at once (the window holds: peak <= capacity)
        self.held: Counter[str] = Counter()
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._dispatch_soon = False

    @property
    def capacity(self) -> int:
        """Slots bulk work may hold now: the window, and the spare seats while interactive calls are quiet."""
        return self.window + (self.spare if self.spare and self.lending() else 0)

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def request(self, client: str) -> asyncio.Future[None]:
        """Ask for a slot for `client` without waiting: the future is done once the slot is granted. A job keeps a
        few requests queued ahead, so a burst of releases still goes round-robin."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(granted)
        self._schedule()
        return granted

    def release(self, client: str) -> None:
        """Give back a slot `client` held."""
        self.used -= 1
        self.held[client] -= 1
        if self.held[client] <= 0:
            del self.held[client]
        self._schedule()

    def withdraw(self, client: str, requests: Iterable[asyncio.Future[None]]) -> None:
        """Give back requests not used: a granted slot is released, a waiting request leaves the queue."""
        for granted in requests:
            if granted.done() and not granted.cancelled():
                self.release(client)
            else:
                granted.cancel()
                self._forget(client, granted)

    async def acquire(self, client: str) -> None:
        """Wait for a slot in `client`'s turn."""
        granted = self.request(client)
        try:
            await asyncio.shield(granted)
        except asyncio.CancelledError:
            self.withdraw(client, [granted])
            raise

    @contextlib.asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        await self.acquire(client)
        try:
            yield
        finally:
            self.release(client)

    def _schedule(self) -> None:
        if not self._dispatch_soon:
            self._dispatch_soon = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        """Grant free slots round-robin across waiting clients; a client at its even part of the window waits
        while another client under its part waits too."""
        self._dispatch_soon = False
        capacity = self.capacity
        while self.used < capacity and self._waiting:
            client = self._next_client()
            queue = self._waiting[client]
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(client)
            else:
                del self._waiting[client]
            if granted.done():  # cancelled meanwhile
                continue
            granted.set_result(None)
            self.used += 1
            self.held[client] += 1
            self.peak = max(self.peak, self.used)

    def _next_client(self) -> str:
        """The first waiting client (in turn order) under its even part, else the first waiting client."""
        active = len(set(self._waiting) | set(self.held))
        share = math.ceil(self.capacity / max(active, 1))
        return next((c for c in self._waiting if self.held[c] < share), next(iter(self._waiting)))

    def _forget(self, client: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(client)
        if queue is not None and granted in queue:
            queue.remove(granted)
            if not queue:
                del self._waiting[client]
