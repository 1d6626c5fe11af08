"""Notifications a client asks for: resource updates and log messages.

Resource updates. A client watches `jobs://{id}`, `metrics://engine` or `model://config` without polling:
- 2025-11-25: `resources/subscribe` / `resources/unsubscribe`; updates go to the session as
  `notifications/resources/updated` (on Streamable HTTP, on its standalone GET stream).
- 2026-07-28: a `subscriptions/listen` stream naming the URIs; updates are published on the SDK's
  subscription bus, which delivers them to the streams that asked.
A background watcher compares a cheap fingerprint of each watched resource every `progress_interval_s`
(a job's status and item counts, the engine's scheduler state and lifetime totals, the engine config) and
notifies once per interval at most. Any URI may be subscribed (a URI we do not watch never fires). A session's
subscriptions end with its connection.

Logging. `logging/setLevel` (2025-11-25) asks for the server's own log records (the `mcp_llm` loggers) at or
above a level: they reach that session as `notifications/message`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server as LowLevelServer
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from mcp_llm.core.jobs import job_status_of
from mcp_llm.core.services import Runtime, Services
from mcp_llm.errors import InputError
from mcp_llm.server.auth import principal

WATCHED = ("model://config", "metrics://engine", "jobs://")  # the resources whose changes are announced
SEND_TIMEOUT_S = 5.0
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
LOG_QUEUE = 1000  # log records waiting to be sent; more are dropped (a client that stopped reading)
LOGGER = "mcp_llm"


class Notifications:
    """Resource subscriptions and log forwarding of one server: `install` on its lowlevel server, then keep
    `running` while the server runs (nested uses share one watcher: the in-process client enters the lifespan
    once per connection)."""

    def __init__(self, runtime: Runtime, bus: SubscriptionBus, interval_s: float) -> None:
        self.subscriptions = Subscriptions(runtime, bus)
        self.logs = LogForwarder()
        self.interval_s = interval_s
        self._users = 0
        self._workers: list[asyncio.Task] = []

    def install(self, server: LowLevelServer) -> None:
        self.subscriptions.install(server)
        self.logs.install(server)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._users += 1
        if self._users == 1:
            self._workers = [
                asyncio.create_task(self.subscriptions.run(self.interval_s)),
                asyncio.create_task(self.logs.run()),
            ]
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0:
                workers, self._workers = self._workers, []
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)


def _connection(session: Any) -> Any:
    """The client connection a request's session belongs to: one per client (a request's `ServerSession` is
    per request). The SDK keeps it private; fall back to the session itself."""
    return getattr(session, "_connection", session)


def _on_close(connection: Any, callback: Callable[[], Any]) -> None:
    """Run `callback` when the connection closes (its exit stack unwinds then)."""
    stack = getattr(connection, "exit_stack", None)
    if stack is not None:
        stack.callback(callback)


class Subscriptions:
    """Who watches which resource, and the watcher that tells them when it changed."""

    def __init__(self, runtime: Runtime, bus: SubscriptionBus) -> None:
        self.runtime, self.bus = runtime, bus
        self._sessions: dict[Any, set[str]] = {}  # connection → URIs it subscribed (2025-11-25)
        self._listening: Counter[str] = Counter()  # URI → open subscriptions/listen streams naming it (2026-07-28)
        self._seen: dict[str, Any] = {}  # URI → its fingerprint at the last look

    def install(self, server: LowLevelServer) -> None:
        """Serve resources/subscribe and resources/unsubscribe (declaring `resources.subscribe`), and note the
        URIs of every subscriptions/listen stream while it is open."""
        server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
        server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe)
        listen = server.get_request_handler("subscriptions/listen")
        if listen is None:
            return
        inner = listen.handler

        async def listen_handler(ctx: Any, params: types.SubscriptionsListenRequestParams) -> Any:
            uris = list(params.notifications.resource_subscriptions or ())
            for uri in uris:
                self._check_readable(uri)
            self._watch(uris)
            self._listening.update(uris)
            try:
                return await inner(ctx, params)
            finally:
                self._listening.subtract(uris)
                self._listening += Counter()  # drop the zero counts

        server.add_request_handler("subscriptions/listen", listen.params_type, listen_handler)

    # --- requests ---
    async def _subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        connection = _connection(ctx.session)
        if connection not in self._sessions:
            self._sessions[connection] = set()
            _on_close(connection, lambda: self._sessions.pop(connection, None))
        uri = str(params.uri)
        self._check_readable(uri)
        self._watch([uri])
        self._sessions[connection].add(uri)
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        self._sessions.get(_connection(ctx.session), set()).discard(str(params.uri))
        return types.EmptyResult()

    def _check_readable(self, uri: str) -> None:
        """A job's updates go only to who may read the job (its owner, admins): another client's job id answers
        as unknown, exactly as reading it would."""
        svc = self.runtime.services
        if svc is None or not uri.startswith("jobs://"):
            return
        try:
            job_status_of(svc, uri.removeprefix("jobs://").split("/")[0], principal())
        except InputError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from exc

    def subscribers(self, uri: str) -> int:
        """Sessions and listen streams watching `uri`."""
        return sum(uri in uris for uris in self._sessions.values()) + self._listening[uri]

    # --- the watcher ---
    def _watch(self, uris: list[str]) -> None:
        """Record the current state of newly watched URIs, so the first change is announced (not the start)."""
        svc = self.runtime.services
        for uri in uris:
            if uri not in self._seen:
                self._seen[uri] = _fingerprint(svc, uri) if svc is not None else None

    async def run(self, interval_s: float) -> None:
        """Look for changes every `interval_s` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll()
            except Exception:
                logging.getLogger(__name__).exception("resource subscription watcher failed; retrying")

    async def poll(self) -> list[str]:
        """Compare every watched resource with its last state; notify the watchers of those that changed."""
        svc = self.runtime.services
        watched = set(self._listening).union(*self._sessions.values())
        for uri in set(self._seen) - watched:
            del self._seen[uri]
        if svc is None:
            return []
        changed = []
        for uri in sorted(watched):
            now = _fingerprint(svc, uri)
            if uri in self._seen and now != self._seen[uri]:
                changed.append(uri)
            self._seen[uri] = now
        for uri in changed:
            await self._notify(uri)
        return changed

    async def _notify(self, uri: str) -> None:
        for connection, uris in list(self._sessions.items()):
            if uri not in uris:
                continue
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(connection.send_resource_updated(uri), SEND_TIMEOUT_S)
            except Exception:  # the session is gone
                self._sessions.pop(connection, None)
        if self._listening[uri]:
            await self.bus.publish(ResourceUpdated(uri=uri))


def _fingerprint(svc: Services, uri: str) -> Any:
    """What changes when the resource's content does, cheaply (no item rows read); None if it cannot be read."""
    try:
        if uri == "model://config":
            engine = svc.engine
            return (engine.model_name, engine.swapping, engine.config().model_dump_json())
        if uri == "metrics://engine":
            snapshot = svc.metrics.snapshot(svc.engine.stats())
            return json.dumps([snapshot["engine"], snapshot["totals"], snapshot["errors_in_window"]], default=str)
        if uri.startswith("jobs://") and "/" not in (job_id := uri.removeprefix("jobs://")):
            job = svc.store.job(job_id)
            if job is None:
                return None
            progress = svc.jobs.progress(job_id)
            live = (progress.completed, progress.failed) if progress is not None else None
            return (job["status"], job["completed"], job["failed"], live)
    except Exception:
        return None
    return None


class LogForwarder(logging.Handler):
    """Sends the `mcp_llm` loggers' records to the sessions that asked with `logging/setLevel`, each at or above
    its level. Records may come from any thread: they are queued onto the server's loop and sent from there."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._levels: dict[Any, int] = {}  # connection → index of its level in LOG_LEVELS
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[list[Any], dict[str, Any]]] = asyncio.Queue(LOG_QUEUE)

    def install(self, server: LowLevelServer) -> None:
        """Serve logging/setLevel (which declares the `logging` capability)."""
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._set_level)

    async def _set_level(self, ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        connection = _connection(ctx.session)
        if connection not in self._levels:
            _on_close(connection, lambda: self._levels.pop(connection, None))
        self._levels[connection] = LOG_LEVELS.index(params.level)
        return types.EmptyResult()

    def emit(self, record: logging.LogRecord) -> None:
        if not self._levels or self._loop is None or self._loop.is_closed():
            return
        level = _mcp_level(record.levelno)
        rank = LOG_LEVELS.index(level)
        targets = [c for c, wanted in list(self._levels.items()) if rank >= wanted]
        if not targets:
            return
        try:
            text = self.format(record)[:4000]
        except Exception:
            text = str(record.msg)
        params = {"level": level, "logger": record.name, "data": text}
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._enqueue, targets, params)

    def _enqueue(self, targets: list[Any], params: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((targets, params))

    async def run(self) -> None:
        """Attach to the `mcp_llm` loggers and send queued records until cancelled."""
        self._loop = asyncio.get_running_loop()
        logging.getLogger(LOGGER).addHandler(self)
        try:
            while True:
                targets, params = await self._queue.get()
                for connection in targets:
                    if connection not in self._levels:
                        continue
                    try:  # no logging here: it would come back to this handler
                        await asyncio.wait_for(connection.notify("notifications/message", params), SEND_TIMEOUT_S)
                    except TimeoutError:
                        pass
                    except Exception:
                        self._levels.pop(connection, None)
        finally:
            logging.getLogger(LOGGER).removeHandler(self)
            self._loop = None


def _mcp_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"
