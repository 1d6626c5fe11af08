"""Fair admission of bulk work: batch items enter the engine through a window of `capacity` slots shared by every
job, handed round-robin across clients as slots free up. A job no longer puts all its items in the engine at once
(an agent's interactive call does not queue behind 10,000 of them, and 10,000 queued items are not 10,000 waiting
coroutines), and a client with three jobs gets no more of the engine than a client with one."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable


class FairGate:
    """`capacity` slots; waiters queue per client, and each freed slot goes to the next client in turn."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.peak = 0  # the most slots ever held at once (the window holds: peak <= capacity)
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def request(self, client: str) -> asyncio.Future[None]:
        """Ask for a slot in `client`'s turn without waiting: the future is done once the slot is granted. A job
        keeps a few requests queued ahead, so a burst of releases (a whole engine batch ending in one step) still
        goes round-robin instead of to whichever client happens to be queued at that instant."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.used < self.capacity and not self._waiting:
            self._take()
            granted.set_result(None)
        else:
            self._waiting.setdefault(client, deque()).append(granted)
        return granted

    def withdraw(self, client: str, requests: Iterable[asyncio.Future[None]]) -> None:
        """Give back requests not used: a granted slot passes on, a waiting one leaves the queue."""
        for granted in requests:
            if granted.done() and not granted.cancelled():
                self.release()
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

    def release(self) -> None:
        """Free a slot: to the next waiting client in round-robin order, else back to the pool."""
        while self._waiting:
            client, queue = next(iter(self._waiting.items()))
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(client)  # its next waiter comes after every other client's
            else:
                del self._waiting[client]
            if not granted.done():
                granted.set_result(None)  # the slot passes on: `used` stays
                return
        self.used -= 1

    @contextlib.asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        await self.acquire(client)
        try:
            yield
        finally:
            self.release()

    def _take(self) -> None:
        self.used += 1
        self.peak = max(self.peak, self.used)

    def _forget(self, client: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(client)
        if queue is not None and granted in queue:
            queue.remove(granted)
            if not queue:
                del self._waiting[client]
