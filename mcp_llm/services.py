"""The lifespan's context: engine, store, metrics and job runner, created once and shared by every client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcp_llm.engine import reaper
from mcp_llm.engine.base import EngineBackend, EngineState
from mcp_llm.errors import Unavailable
from mcp_llm.inference import Recorder
from mcp_llm.jobs import JobRunner
from mcp_llm.metrics import Metrics
from mcp_llm.settings import Settings
from mcp_llm.store import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What handlers reach through `ctx.request_context.lifespan_context`."""

    settings: Settings
    engine: EngineBackend
    store: Store
    metrics: Metrics
    recorder: Recorder
    jobs: JobRunner


@dataclass
class Runtime:
    """Where the server stands, for handlers the SDK gives no context (static resources, /health)."""

    state: EngineState = EngineState.STARTING
    detail: str = field(default="")
    services: Services | None = None

    def require(self) -> Services:
        """The services, or Unavailable when the engine is not serving."""
        if self.services is None:
            raise Unavailable(f"The engine is {self.state.value}; retry in a moment.")
        return self.services


def resolve_model(settings: Settings) -> tuple[str, str]:
    """(served name, path or hub id) of the model to serve; prepares the default model when none is set."""
    if settings.model:
        name = settings.served_model_name or Path(settings.model).name or settings.model
        return name, settings.model
    from mcp_llm import default_model

    path = default_model.ensure_prepared(settings.model_store)
    return settings.served_model_name or default_model.MODEL_NAME, str(path)


async def _flush_every(store: Store, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        store.flush()


@asynccontextmanager
async def open_services(settings: Settings, runtime: Runtime | None = None) -> AsyncIterator[Services]:
    """Start engine, store and job runner; resume unfinished jobs; on exit stop jobs, drain, stop the engine."""
    from mcp_llm.engine.local import LocalEngine

    runtime = runtime or Runtime()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    reaper.reap_stale(settings.data_dir)
    runtime.state = EngineState.STARTING
    try:
        name, path = resolve_model(settings)
        engine = await LocalEngine.start(settings.engine_args(path), name)
    except Exception as exc:
        runtime.state, runtime.detail = EngineState.FAILED, str(exc)
        raise
    reaper.record(settings.data_dir)
    store = Store(settings.database, settings.request_log_max_rows)
    metrics = Metrics(window_s=settings.metrics_window_s)
    recorder = Recorder(engine, metrics, store, log_text=settings.log_request_text)
    services = Services(settings, engine, store, metrics, recorder, JobRunner(store, recorder))
    flusher = asyncio.create_task(_flush_every(store, settings.flush_interval_s))
    services.jobs.resume()
    runtime.services, runtime.state = services, EngineState.READY
    try:
        yield services
    finally:
        runtime.state = EngineState.DRAINING
        await services.jobs.close()
        await engine.shutdown(settings.drain_timeout_s)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        store.close()
        reaper.clear(settings.data_dir)
        runtime.services, runtime.state = None, EngineState.STOPPED
