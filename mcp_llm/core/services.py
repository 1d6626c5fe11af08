"""The lifespan's context: engine, store, metrics and job runner, created once and shared by every client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_llm import default_model, embedding_model
from mcp_llm.background import repeating
from mcp_llm.core import answers, shared_metrics
from mcp_llm.core.fairness import LEND_AFTER_S, FairGate
from mcp_llm.core.inference import Recorder
from mcp_llm.core.jobs import JobRunner
from mcp_llm.core.limits import InflightLimiter
from mcp_llm.core.metrics import Metrics
from mcp_llm.core.quotas import Quotas
from mcp_llm.core.store import Store, StoreError
from mcp_llm.core.tenancy import cache_salt_for
from mcp_llm.engine import reaper
from mcp_llm.engine.base import EngineBackend, EngineState, Phase
from mcp_llm.engine.embedder import Embedder
from mcp_llm.engine.swap import EngineSpec, Starter, SwappableEngine
from mcp_llm.errors import Unavailable
from mcp_llm.schemas import EngineConfig, SamplingOptions
from mcp_llm.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What handlers reach through `ctx.request_context.lifespan_context`."""

    settings: Settings
    engine: SwappableEngine
    store: Store
    metrics: Metrics
    recorder: Recorder
    jobs: JobRunner
    limiter: InflightLimiter
    embedder: Embedder | None = None  # the pooling engine behind `embed`, when `embedding_model` is set
    front_end: int | None = None  # this process's index among the front-ends of --api-server-count

    @property
    def quotas(self) -> Quotas:
        assert self.recorder.quotas is not None  # open_services always gives the recorder its quotas
        return self.recorder.quotas

    async def answering(
        self,
        sampling: SamplingOptions,
        tools: list[dict] | None = None,
        tool_choice: str | dict | None = None,
        pick: answers.Pick = "first",
        include_reasoning: bool = False,
    ) -> answers.Answering:
        """A request's answering plan with this server's parsers, checked before any token is spent."""
        return await answers.answering(
            sampling, tools, tool_choice, pick, include_reasoning, **answers.server_parsers(self.settings)
        )

    def prometheus_text(self) -> bytes:
        """Prometheus text of the serving engine and our series; with several front-ends, all of theirs."""
        own = self.metrics.exposition(self.engine.stats())
        if self.front_end is None:
            return own
        return shared_metrics.gathered(self.settings.data_dir, self.front_end, own)


@dataclass
class Runtime:
    """Where the server stands: the lifespan's context, also read by static resources and /health.

    The engine starts in the background, so clients connect (and `/health` answers 503 `starting`)
    at once; handlers wait for it with `wait_ready`, telling their callers `waiting_for()` meanwhile.
    """

    state: EngineState = EngineState.STARTING
    detail: str = field(default="")
    services: Services | None = None
    start_timeout_s: float = 900.0
    progress_interval_s: float = 0.5  # keep-alive progress while a call waits (the setting, once the start begins)
    phase: Phase = field(default_factory=Phase)  # where the start is: "importing vLLM", "loading weights", ...
    settings: Settings | None = None  # what was asked for: model://config answers from it while the engine starts
    _settled: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, state: EngineState, services: Services | None = None, detail: str = "") -> None:
        self.state, self.services, self.detail = state, services, detail
        if state is not EngineState.STARTING:
            self._settled.set()

    def require(self) -> Services:
        """The services, or Unavailable when the engine is not serving."""
        if self.services is None:
            reason = f": {self.detail}" if self.detail else "; retry in a moment"
            raise Unavailable(f"The engine is {self.state.value}{reason}.")
        return self.services

    def waiting_for(self) -> str | None:
        """What a call would wait for now, in words ("engine starting: loading weights", "model swap to X:
        draining requests in flight"); None when the engine serves."""
        if self.state is EngineState.STARTING:
            return f"engine starting: {self.phase.text}" if self.phase.text else "engine starting"
        if self.services is not None and self.state is EngineState.READY:
            return self.services.engine.waiting_for()
        return None

    async def wait_ready(self) -> Services:
        """The services once the engine serves; Unavailable if it failed or is not up within start_timeout_s."""
        if self.state is EngineState.STARTING:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), self.start_timeout_s)
        return self.require()


PRUNE_EVERY_S = 600.0


def job_window_for(max_num_seqs: int) -> int:
    """Batch items in the engine at once while interactive calls run: nearly a full engine batch, with seats left
    free (an eighth, at least two) so an interactive call is scheduled at once instead of waiting for a bulk item to
    finish (vLLM does not preempt a running request for a waiting one of higher priority)."""
    return max(1, max_num_seqs - max(2, max_num_seqs // 8))


def job_gate(settings: Settings, engine: EngineBackend, limiter: InflightLimiter) -> FairGate:
    """The window batch items enter the engine through: `job_window` when set; by default the engine's seats less
    those kept for interactive calls, which bulk work borrows while interactive calls are quiet."""
    if settings.job_window:
        return FairGate(settings.job_window)
    seats = max(1, (engine.config().max_num_seqs or 256) // settings.api_server_count)  # a front-end's share
    window = job_window_for(seats)
    return FairGate(window, seats - window, lambda: limiter.quiet_for() >= LEND_AFTER_S)


def configured(settings: Settings, state: EngineState, detail: str = "") -> EngineConfig:
    """The configuration asked for, before the engine can say what it chose: vLLM's own figures (KV cache, device,
    version) stay None until it serves."""
    if settings.backend == "openai":
        name, model_path = settings.served_model_name or "remote", settings.base_url or ""
    elif settings.model:
        name, model_path = served_name(settings), settings.model
    else:
        name, model_path = served_name(settings), str(default_model.model_dir(settings.model_store))
    return EngineConfig(
        model=name,
        model_path=model_path,
        backend=settings.backend,
        endpoint=settings.base_url if settings.backend == "openai" else None,
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        scheduling_policy="priority" if settings.prioritized else "fcfs",
        enable_prefix_caching=settings.enable_prefix_caching,
        enforce_eager=settings.enforce_eager,
        tensor_parallel_size=settings.tensor_parallel_size,
        quantization=settings.quantization,
        lora=bool(settings.enable_lora),
        state=state.value,
        detail=detail or None,
    )


def served_name(settings: Settings) -> str:
    """The name the in-process engine serves its model under: `served_model_name`, else the model folder's name
    (or hub id), else the bundled default's."""
    if settings.served_model_name:
        return settings.served_model_name
    return (Path(settings.model).name or settings.model) if settings.model else default_model.MODEL_NAME


def resolve_model(settings: Settings) -> tuple[str, str]:
    """(served name, path or hub id) of the model to serve; prepares the default model when none is set."""
    if settings.model:
        return served_name(settings), settings.model
    return served_name(settings), str(default_model.ensure_prepared(settings.model_store))


def engine_starter(settings: Settings, phase: Phase | None = None, client: dict[str, Any] | None = None) -> Starter:
    """Starts the serving engine from a spec (at start, and on every `load_model`), logging vLLM's output
    also to <data_dir>/logs/engine.log (where the chosen kernels are read) and recording its processes;
    where the start is goes to `phase`. With `client`, attaches to the engine core of a parent process instead
    (a front-end of `--api-server-count`: the parent records the engine's processes)."""
    phase = phase or Phase()

    async def start(spec: EngineSpec) -> EngineBackend:
        if settings.backend == "openai":
            from mcp_llm.engine.remote import RemoteEngine

            phase.set(f"connecting to the vLLM server at {settings.base_url}")
            return await RemoteEngine.start(settings)
        from mcp_llm.engine.local import LocalEngine

        if client is not None:
            return await LocalEngine.start(spec.args, spec.name, on_phase=phase.set, client=client)
        async with reaper.recording(settings.data_dir):
            return await LocalEngine.start(spec.args, spec.name, log_file=settings.engine_log, on_phase=phase.set)

    return start


async def start_embedder(settings: Settings, engine: EngineBackend) -> Embedder | None:
    """The pooling engine for `embed` when `embedding_model` is set (`default`: the bundled all-MiniLM-L6-v2);
    the generator is stopped again if it cannot start, so a failed start leaves no engine behind."""
    if not settings.embedding_model:
        return None
    from mcp_llm.engine.embedder import Embedder

    name, path = settings.embedding_model, settings.embedding_model
    if name == embedding_model.BUNDLED:
        prepared = await asyncio.to_thread(embedding_model.prepare, settings.model_store)
        name, path = embedding_model.MODEL_NAME, str(prepared)
    try:
        async with reaper.recording(settings.data_dir):
            return await Embedder.start(path, Path(name).name or name)
    except Exception:
        await engine.shutdown(0)
        raise


async def _flush_every(store: Store, interval_s: float) -> None:
    """Write buffered results; while the database cannot be written they wait in memory (and /health says why)."""
    while True:
        await asyncio.sleep(interval_s)
        failing = store.write_error
        try:
            store.flush()
        except sqlite3.Error as exc:
            if not failing:
                log.warning("cannot write the database (%s); results wait in memory and are retried", exc)
        else:
            if failing:
                log.info("the database is writable again; buffered results written")


@asynccontextmanager
async def open_services(
    settings: Settings, runtime: Runtime | None = None, client: dict[str, Any] | None = None
) -> AsyncIterator[Services]:
    """Start engine, store and job runner; resume unfinished jobs; on exit stop jobs, drain, stop the engine.
    With `client`, the engine is a parent's engine core (engine_starter) and jobs are shared as replicas share
    them (leases: the other front-ends serve too)."""
    runtime = runtime or Runtime()
    runtime.progress_interval_s = settings.progress_interval_s
    phase = runtime.phase
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if client is None:
        reaper.reap_stale(settings.data_dir)
    runtime.set(EngineState.STARTING)
    start = engine_starter(settings, phase, client)
    try:
        store = Store(settings.database, settings.request_log_max_rows)  # a damaged database stops the start
    except StoreError as exc:
        runtime.set(EngineState.FAILED, detail=str(exc))
        raise
    try:
        if settings.backend == "openai":
            spec = EngineSpec(settings.served_model_name or "remote", {"model": settings.base_url})
        else:
            phase.set("finding the model" if settings.model else "preparing the default model")
            name, path = await asyncio.to_thread(resolve_model, settings)  # may prepare the default model (~45 s)
            spec = EngineSpec(name, settings.engine_args(path))
        engine = SwappableEngine(await start(spec), spec, start, phase)  # load_model swaps what it holds
        if settings.embedding_model:
            phase.set("starting the embedding engine")
        embedder = await start_embedder(settings, engine)
    except Exception as exc:
        runtime.set(EngineState.FAILED, detail=f"{type(exc).__name__}: {exc}")
        store.close()
        raise
    metrics = Metrics(window_s=settings.metrics_window_s)
    salt_for = cache_salt_for(settings)
    limiter = InflightLimiter(settings.max_inflight_total, settings.max_inflight_per_client)
    quotas = Quotas(settings, store)
    recorder = Recorder(
        engine, metrics, store, settings.log_request_text, salt_for, limiter, quotas, settings.prioritized
    )
    jobs = JobRunner(store, recorder, settings.item_retry_s, settings.job_lease_s, job_gate(settings, engine, limiter))
    jobs.max_database_bytes = settings.max_database_bytes
    jobs.parsers = answers.server_parsers(settings)
    front_end = None if client is None else client["client_index"]
    services = Services(settings, engine, store, metrics, recorder, jobs, limiter, embedder, front_end)
    flusher = asyncio.create_task(_flush_every(store, settings.flush_interval_s))
    jobs.resume(take_all=settings.backend == "local" and client is None)  # then this server alone owns the data dir
    phase.set("")
    runtime.set(EngineState.READY, services)

    async def watch_engine() -> None:
        """Restart the engine when its process died (killed, out of memory); jobs retry their items meanwhile."""
        if engine.dead and settings.engine_restart_attempts and client is None:  # a front-end: the core is its parent's
            await engine.restart(settings.engine_restart_attempts, settings.engine_restart_backoff_s)

    async def publish_metrics() -> None:
        """A front-end's own Prometheus text where the other front-ends read it (shared_metrics)."""
        assert front_end is not None
        own = metrics.exposition(engine.stats())
        await asyncio.to_thread(shared_metrics.publish, settings.data_dir, front_end, own)

    async def prune() -> None:
        """Retention: old jobs, tasks, benchmark runs and usage rows go (every 10 minutes, first at start)."""
        try:
            jobs.prune(time.time(), settings)
        except sqlite3.Error as exc:  # a busy or full disk: the next pass tries again
            log.warning("retention pass failed: %s", exc)

    try:
        async with (
            repeating(jobs.maintain, settings.job_lease_s / 3),
            repeating(watch_engine, 1.0),
            repeating(prune, PRUNE_EVERY_S),
            repeating(publish_metrics, 1.0) if front_end is not None else contextlib.nullcontext(),
        ):
            yield services
    finally:
        runtime.set(EngineState.DRAINING, services)
        await services.jobs.close()
        await engine.shutdown(settings.drain_timeout_s)
        if embedder is not None:
            embedder.shutdown()
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        try:
            store.close()
        except sqlite3.Error as exc:  # unwritten results stay pending in the database and run again at resume
            log.warning("could not write the last results (%s); their items run again at next start", exc)
        if client is None:
            reaper.clear(settings.data_dir)
        runtime.set(EngineState.STOPPED)
