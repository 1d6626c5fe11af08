"""The serving engine behind one stable object, so `load_model` can replace it while clients keep calling.

Tools, the Recorder and the JobRunner hold a `SwappableEngine`; it forwards to the engine inside. A swap
closes the gate (new requests wait), drains in-flight requests (bounded, then aborted with a clear error),
stops the old engine, starts the new one, and if that fails starts the previous one again; then the gate
opens and the waiting requests run on whichever engine now serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from mcp_llm.engine.base import Adapter, EngineBackend, EngineState, EngineStats, Phase
from mcp_llm.errors import InputError, Retryable, Unavailable
from mcp_llm.schemas import ChatMessage, Completion, EngineConfig, SamplingOptions

log = logging.getLogger(__name__)

TOKENIZER_PROBE = "Tokenizer probe: The capital of France is Paris. 1234 ünïcödé {json: [1, 2]}"


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is started from: the served name and vLLM's engine arguments."""

    name: str
    args: dict[str, Any] = field(hash=False)


Starter = Callable[[EngineSpec], Awaitable[EngineBackend]]

# How a request waits at a closed gate: (the wait, what it waits for in words) -> the wait, done. The tool layer
# sets it around a call (keep-alive progress to the caller, see tools/common.py); unset, the wait is silent.
GateWaiter = Callable[[Awaitable[None], Callable[[], str | None]], Awaitable[None]]
gate_waiter: ContextVar[GateWaiter | None] = ContextVar("gate_waiter", default=None)


class SwapAborted(Retryable):
    """A request was still running when a swap's drain timed out and was aborted; it can be sent again."""


class SwapFailed(Unavailable):
    """The new engine did not start; the message says whether the previous model serves again."""


class SwappableEngine:
    """An EngineBackend that forwards to the current engine and can swap it for another."""

    def __init__(self, engine: EngineBackend, spec: EngineSpec, starter: Starter, phase: Phase | None = None) -> None:
        self._engine, self.spec, self._starter = engine, spec, starter
        self.phase = phase or Phase()  # what the starter is doing (it reports there), while the gate is closed
        self._closed_for = ""  # why the gate is closed: "model swap to X", "engine restarting (attempt 1/3)"
        self._open = asyncio.Event()
        self._open.set()
        self._lock = asyncio.Lock()
        self._tokenizer_changed = False
        self.swaps = 0
        self.restarts = 0
        self.restarting = False
        self._restart_detail = ""
        self._given_up = False
        self.last_swap_s: float | None = None  # how long the last swap kept new requests waiting

    # --- forwarded ---
    @property
    def current(self) -> EngineBackend:
        return self._engine

    @property
    def state(self) -> EngineState:
        if self.restarting:
            return EngineState.STARTING
        return self._engine.state if self._open.is_set() else EngineState.DRAINING

    @property
    def detail(self) -> str:
        """Why the engine is not ready, when there is more to say than its state."""
        return self._restart_detail if self.restarting else getattr(self._engine, "detail", "")

    @property
    def dead(self) -> bool:
        """The engine's process died and it has not been restarted yet."""
        return bool(getattr(self._engine, "dead", False)) and not self.restarting and not self._given_up

    @property
    def model_name(self) -> str:
        return self._engine.model_name

    @property
    def backend(self) -> str:
        """`local` (in-process vLLM) or `openai` (a remote vLLM server)."""
        return self._engine.backend

    @property
    def max_model_len(self) -> int:
        return self._engine.max_model_len

    @property
    def swapping(self) -> bool:
        return not self._open.is_set()

    def waiting_for(self) -> str | None:
        """What a request at the closed gate waits for, with the start's phase ("model swap to X: loading
        weights"); None while the gate is open."""
        if self._open.is_set():
            return None
        what = self._closed_for or "engine swap"
        return f"{what}: {self.phase.text}" if self.phase.text else what

    def config(self) -> EngineConfig:
        return self._engine.config()

    def tokenize_text(self, text: str) -> list[int]:
        return self._engine.tokenize_text(text)

    def tokenize_chat(self, messages: list[ChatMessage], tools: list[dict] | None = None) -> list[int]:
        return self._engine.tokenize_chat(messages, tools)

    def tokenize_many(
        self, inputs: list[str | list[ChatMessage]], tools: list[dict] | None = None
    ) -> list[list[int] | InputError]:
        return self._engine.tokenize_many(inputs, tools)

    def tool_calls_in(self, parser_name: str, text: str, tools: list[dict]) -> tuple[list[dict], str]:
        return self._engine.tool_calls_in(parser_name, text, tools)

    def reasoning_in(self, parser_name: str, text: str) -> tuple[str | None, str]:
        return self._engine.reasoning_in(parser_name, text)

    def detokenize(self, token_ids: list[int]) -> str:
        return self._engine.detokenize(token_ids)

    def kernels(self) -> dict[str, str]:
        return self._engine.kernels()

    def num_unfinished_requests(self) -> int:
        return self._engine.num_unfinished_requests()

    def stats(self) -> EngineStats:
        return self._engine.stats()

    async def generate(
        self,
        token_ids: list[int],
        options: SamplingOptions,
        request_id: str,
        adapter: Adapter | None = None,
        cache_salt: str | None = None,
        priority: int = 0,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        engine = await self._admit()
        completion = await engine.generate(token_ids, options, request_id, adapter, cache_salt, priority, on_text)
        if completion.finish_reason == "abort" and engine.state is not EngineState.READY:
            raise SwapAborted(
                "This request was aborted: the server swapped models and it was still running after "
                "drain_timeout_s. Send it again (it runs on the new model)."
            )
        return completion

    async def prompt_logprobs(self, token_ids: list[int], request_id: str) -> list[float]:
        engine = await self._admit()
        return await engine.prompt_logprobs(token_ids, request_id)

    async def shutdown(self, drain_timeout_s: float) -> None:
        async with self._lock:  # never stop in the middle of a swap
            await self._engine.shutdown(drain_timeout_s)

    # --- restarting ---
    async def restart(self, attempts: int, backoff_s: float) -> None:
        """Start the same spec again after its engine process died; new requests wait meanwhile. Up to
        `attempts` starts, `backoff_s` doubling between them (capped at 30 s); after that the engine stays
        FAILED and requests get its error."""
        async with self._lock:
            self._open.clear()
            self.restarting = True
            try:
                with contextlib.suppress(Exception):
                    await self._engine.shutdown(0)
                for attempt in range(1, attempts + 1):
                    self._restart_detail = f"the engine process died; restarting it (attempt {attempt}/{attempts})"
                    self._closed_for = f"engine restarting (attempt {attempt}/{attempts})"
                    self.phase.set("restarting")
                    log.warning("%s", self._restart_detail)
                    try:
                        self._engine = await self._starter(self.spec)
                    except Exception:
                        log.exception("engine restart attempt %d failed", attempt)
                        await asyncio.sleep(min(30.0, backoff_s * 2 ** (attempt - 1)))
                        continue
                    self.restarts += 1
                    self._given_up = False
                    log.info("engine restarted (%s)", self.spec.name)
                    return
                log.error("the engine could not be restarted after %d attempts", attempts)
                self._given_up = True
                self._engine.state = EngineState.FAILED
            finally:
                self.restarting = False
                self._closed_for = ""
                self.phase.set("")
                self._open.set()

    # --- swapping ---
    async def _admit(self) -> EngineBackend:
        """The engine to run on, once no swap is in progress."""
        if self._open.is_set():
            return self._engine
        waiter = gate_waiter.get()
        if waiter is None:
            await self._open.wait()
        else:
            await waiter(self._open.wait(), self.waiting_for)
        if self._tokenizer_changed:
            raise Unavailable(
                f"The served model changed to {self._engine.model_name}, whose tokenizer differs, while this "
                "request waited: send it again."
            )
        return self._engine

    async def swap(self, spec: EngineSpec, drain_timeout_s: float) -> EngineBackend:
        """Serve `spec` instead of the current engine; on a failed start, serve the previous one again.

        Raises SwapFailed (the previous model serves again, or nothing serves if it failed too).
        """
        async with self._lock:
            self._open.clear()
            started = time.monotonic()
            old, old_spec = self._engine, self.spec
            self._closed_for = f"model swap to {spec.name}"
            try:
                log.info("swapping %s -> %s: draining (up to %.0f s)", old.model_name, spec.name, drain_timeout_s)
                self.phase.set("draining requests in flight")
                await old.shutdown(drain_timeout_s)
                self.phase.set("starting the new engine")
                try:
                    new = await self._starter(spec)
                except Exception as exc:
                    log.exception("the engine for %s failed to start; restoring %s", spec.name, old_spec.name)
                    reason = f"{type(exc).__name__}: {exc}"
                    self._closed_for = f"model swap to {spec.name} failed; restoring {old_spec.name}"
                    try:
                        self._engine = await self._starter(old_spec)
                    except Exception as again:
                        raise SwapFailed(
                            f"{spec.name} failed to start ({reason}) and restarting {old_spec.name} failed too "
                            f"({type(again).__name__}: {again}): nothing serves; call load_model again."
                        ) from exc
                    raise SwapFailed(f"{spec.name} failed to start ({reason}); {old_spec.name} serves again.") from exc
                self._tokenizer_changed = old.tokenize_text(TOKENIZER_PROBE) != new.tokenize_text(TOKENIZER_PROBE)
                self._engine, self.spec = new, spec
                self.swaps += 1
                return new
            finally:
                self.last_swap_s = time.monotonic() - started
                self._closed_for = ""
                self.phase.set("")
                self._open.set()
