"""The lifespan's context: engine and settings, created once and shared by every client and handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcp_llm.engine.base import EngineBackend, EngineState
from mcp_llm.errors import Unavailable
from mcp_llm.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What handlers reach through `ctx.request_context.lifespan_context`."""

    settings: Settings
    engine: EngineBackend


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

    path = default_model.ensure_prepared(settings.data_dir)
    return settings.served_model_name or default_model.MODEL_NAME, str(path)


@asynccontextmanager
async def open_services(settings: Settings, runtime: Runtime | None = None) -> AsyncIterator[Services]:
    """Start the engine, yield the services, then drain and stop the engine."""
    from mcp_llm.engine.local import LocalEngine

    runtime = runtime or Runtime()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime.state = EngineState.STARTING
    try:
        name, path = resolve_model(settings)
        engine = await LocalEngine.start(settings.engine_args(path), name)
    except Exception as exc:
        runtime.state, runtime.detail = EngineState.FAILED, str(exc)
        raise
    runtime.services = Services(settings=settings, engine=engine)
    runtime.state = EngineState.READY
    try:
        yield runtime.services
    finally:
        runtime.state = EngineState.DRAINING
        await engine.shutdown(settings.drain_timeout_s)
        runtime.services = None
        runtime.state = EngineState.STOPPED
