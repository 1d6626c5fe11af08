"""In-process vLLM (`AsyncLLM`): the only module that imports vLLM.

vLLM is imported lazily, inside `LocalEngine.start` (in a worker thread: `import_vllm`), so importing this
module has no side effects (vLLM spawns its engine core in a new process), the server answers `initialize`
and `tools/list` before vLLM, torch and transformers are loaded (~10 s on a small CPU), and, in stdio mode,
anything vLLM prints at import lands after the transport has claimed stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_llm.background import repeating
from mcp_llm.engine import shared_core
from mcp_llm.engine.base import (
    Adapter,
    EngineState,
    EngineStats,
    Tokenizing,
    bind_engine_series,
    output_budget,
    token_logprob,
)
from mcp_llm.engine.parsers import Parsing
from mcp_llm.errors import InputError, Retryable, Unavailable
from mcp_llm.schemas import (
    Completion,
    Confidence,
    EngineConfig,
    Sample,
    SamplingOptions,
    Timing,
    Usage,
    tokens_per_s,
)

log = logging.getLogger(__name__)

CPU_KV_CACHE_BYTES = 2 << 30  # 2 GiB: several engines fit in this machine's 24 GiB


def _prepare_environment() -> None:
    """vLLM logs to stdout unless told otherwise; the engine-core process inherits this."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "1")


def _import_vllm() -> None:
    """Import vLLM (and with it torch and transformers: ~10 s on a small CPU). Nothing imports it at module level:
    the server answers `initialize` first, and the engine start imports it here, in a worker thread, so the
    event loop keeps serving meanwhile."""
    _prepare_environment()  # before the first vLLM import: its logger reads VLLM_LOGGING_STREAM then
    import vllm.engine.arg_utils
    import vllm.platforms
    import vllm.v1.engine.async_llm  # noqa: F401


async def import_vllm(on_phase: Callable[[str], None] | None = None) -> None:
    """`_import_vllm` off the event loop; reports the phase when the import has not happened yet."""
    _prepare_environment()  # also when vLLM is imported already: the engine-core process reads it at spawn
    if "vllm.v1.engine.async_llm" in sys.modules:
        return
    if on_phase is not None:
        on_phase("importing vLLM")
    await asyncio.to_thread(_import_vllm)


# Where an engine start is, from vLLM's own log lines (main and engine-core processes both write the log file).
START_PHASES = (
    ("init engine (profile, create kv cache, warmup model) took", "finishing start"),
    ("Loading weights took", "compiling/profiling"),
    ("Model loading took", "compiling/profiling"),
    ("Warming up model for the compilation", "compiling/profiling"),
    ("Starting to load model", "loading weights"),
)


def start_phase(log_text: str) -> str | None:
    """The latest start phase vLLM's log shows, None before any."""
    found = [(log_text.rfind(marker), phase) for marker, phase in START_PHASES]
    position, phase = max(found)
    return phase if position >= 0 else None


@contextlib.asynccontextmanager
async def _watching_phase(log_file: Path | None, on_phase: Callable[[str], None], every_s: float = 0.5):
    """While the engine builds, read the phase from its log file every `every_s` (a few KB) and report it."""
    on_phase("starting the engine")

    async def read_phase() -> None:
        assert log_file is not None
        with contextlib.suppress(OSError):
            if (phase := start_phase(log_file.read_text(errors="replace"))) is not None:
                on_phase(phase)

    if log_file is None:
        yield
        return
    async with repeating(read_phase, every_s):
        yield


class LocalEngine(Tokenizing, Parsing):
    """An `AsyncLLM` in this process (its engine core in a child process)."""

    backend = "local"

    def __init__(self, llm: Any, model_name: str, model_path: str, stats: EngineStats) -> None:
        self._llm = llm
        self._stats = stats
        self._model_name = model_name
        self._model_path = model_path
        self._tokenizer = _tokenizer(llm)
        self._vllm_config = llm.vllm_config
        self._inflight: set[str] = set()
        self._lora_ids: dict[tuple[str, str, tuple[int, int]], int] = {}  # (name, folder, version) -> id
        self.state = EngineState.READY
        self.log_file: Path | None = None

    @classmethod
    async def start(
        cls,
        engine_args: dict[str, Any],
        model_name: str,
        log_file: Path | None = None,
        on_phase: Callable[[str], None] | None = None,
        client: dict[str, Any] | None = None,
    ) -> LocalEngine:
        """Build the engine from EngineArgs fields and wait until it serves.

        With `log_file`, vLLM's logs (its engine-core process's too) are also written there, which is
        where `kernels()` reads the linear kernels vLLM chose. `on_phase` hears where the start is
        ("importing vLLM", "loading weights", "compiling/profiling", ...). With `client` (see
        `shared_core.engine_core`), this process is one front-end of an engine core its parent started.
        """
        report = on_phase or (lambda _phase: None)
        await import_vllm(report)
        from vllm.v1.engine.async_llm import AsyncLLM

        args = serving_args(engine_args, model_name, log_file)
        started = time.perf_counter()
        stats = EngineStats()
        vllm_args, loggers = engine_args_of(args), _stat_loggers(stats)
        if client is None:
            build = functools.partial(AsyncLLM.from_engine_args, vllm_args, stat_loggers=loggers)
        else:
            build = functools.partial(shared_core.attach, vllm_args, client, loggers)
        # in a thread: building the engine takes ~30 s, and the event loop keeps serving meanwhile
        try:
            async with _watching_phase(log_file, report):
                llm = await asyncio.to_thread(build)
        except ValueError as exc:  # vLLM's config checks (pydantic's ValidationError is a ValueError too)
            raise EngineSettingsError(f"vLLM rejected the engine settings: {_first_error(exc)}") from exc
        try:
            await llm.check_health()
        except Exception:
            llm.shutdown()
            raise
        log.info("engine ready in %.1f s (%s)", time.perf_counter() - started, model_name)
        engine = cls(llm, model_name, args["model"], stats)
        engine.log_file = log_file
        return engine

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_model_len(self) -> int:
        return self._vllm_config.model_config.max_model_len

    def config(self) -> EngineConfig:
        import vllm

        vc = self._vllm_config
        cache = vc.cache_config
        blocks = cache.num_gpu_blocks
        return EngineConfig(
            model=self._model_name,
            model_path=self._model_path,
            dtype=str(vc.model_config.dtype).removeprefix("torch."),
            max_model_len=vc.model_config.max_model_len,
            max_num_seqs=vc.scheduler_config.max_num_seqs,
            max_num_batched_tokens=vc.scheduler_config.max_num_batched_tokens,
            scheduling_policy=str(vc.scheduler_config.policy),
            device=str(vc.device_config.device_type),
            kv_cache_tokens=blocks * cache.block_size if blocks else None,
            kv_cache_bytes=cache.kv_cache_memory_bytes,
            block_size=cache.block_size,
            enable_prefix_caching=bool(cache.enable_prefix_caching),
            enforce_eager=bool(vc.model_config.enforce_eager),
            tensor_parallel_size=vc.parallel_config.tensor_parallel_size,
            parallelism=_parallelism(vc.parallel_config),
            quantization=vc.model_config.quantization,
            kernels=self.kernels(),
            speculative=_speculative(vc.speculative_config),
            lora=vc.lora_config is not None,
            adapters=self.adapters,
            vllm_version=vllm.__version__,
            state=self.state.value,
        )

    def _sampling_params(self, options: SamplingOptions, max_tokens: int) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        # a client's schema was checked where it entered (generate, batch, jobs, flows): schema_guard
        constraint = options.structured_outputs()
        structured = StructuredOutputsParams(**constraint) if constraint else None
        try:
            return SamplingParams(
                n=options.n,
                max_tokens=max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                top_k=options.top_k or 0,
                stop=options.stop,
                seed=options.seed,
                presence_penalty=options.presence_penalty,
                frequency_penalty=options.frequency_penalty,
                repetition_penalty=options.repetition_penalty,
                ignore_eos=options.ignore_eos,
                logprobs=options.logprobs,
                prompt_logprobs=options.prompt_logprobs,
                structured_outputs=structured,
                output_kind=RequestOutputKind.FINAL_ONLY,
            )
        except Exception as exc:  # it only validates (VLLMValidationError, ValueError in older vLLMs): in its words
            raise InputError(f"vLLM refused the request's options: {exc}") from exc

    def _lora_request(self, adapter: Adapter | None) -> Any:
        """vLLM's LoRARequest for an adapter: one stable int id per version of an adapter for this engine's life (a
        name deleted and made again is a new version, whose weights vLLM loads afresh instead of serving the old)."""
        if adapter is None:
            return None
        if self._vllm_config.lora_config is None:
            raise InputError(
                f"Adapter {adapter.name!r} cannot run: this server was started without LoRA. "
                "Restart it with --enable-lora true (and --max-lora-rank at least the adapter's rank)."
            )
        from vllm.lora.request import LoRARequest

        key = (adapter.name, adapter.path, _version(adapter.path))
        lora_id = self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
        return LoRARequest(adapter.name, lora_id, adapter.path)

    @property
    def adapters(self) -> list[str]:
        """Names of the adapters this engine has been given (it loads each on first use)."""
        return sorted({name for name, *_ in self._lora_ids})

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
        from vllm.exceptions import VLLMValidationError
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        if self.dead:
            raise self._lost()
        if self.state is not EngineState.READY:
            raise Unavailable(f"The engine is {self.state.value}; retry in a moment.")
        max_tokens = output_budget(len(token_ids), self.max_model_len, options.max_tokens)
        params = self._sampling_params(options, max_tokens)
        if on_text is not None:  # each output holds the text so far (else only the final one comes)
            params.output_kind = RequestOutputKind.CUMULATIVE
        lora = self._lora_request(adapter)
        final = None
        self._inflight.add(request_id)
        try:
            stream = self._llm.generate(
                _token_prompt(token_ids, cache_salt, params), params, request_id, lora_request=lora, priority=priority
            )
            async for output in stream:
                final = output
                if on_text is not None:
                    on_text(output.outputs[0].text)
        except VLLMValidationError as exc:
            raise InputError(f"The engine rejected the request: {exc}") from exc
        except ValueError as exc:  # vLLM's input checks (a regex it cannot compile) raise plain ValueErrors too
            if final is not None:
                raise
            raise InputError(f"The engine rejected the request: {exc}") from exc
        except EngineDeadError as exc:
            raise self._lost() from exc
        finally:
            self._inflight.discard(request_id)
        assert final is not None
        return _completion(final, options)

    @property
    def dead(self) -> bool:
        """The engine-core process died (killed, out of memory): nothing will run until it is restarted."""
        return self.state is not EngineState.STOPPED and bool(self._llm.errored)

    def _lost(self) -> EngineLost:
        self.state = EngineState.FAILED
        return EngineLost("The engine process died mid-request; the server is restarting it. Send the request again.")

    async def prompt_logprobs(self, token_ids: list[int], request_id: str) -> list[float]:
        """Log-probability of each prompt token after the first, given those before it (for perplexity)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if self.state is not EngineState.READY:
            raise Unavailable(f"The engine is {self.state.value}; retry in a moment.")
        output_budget(len(token_ids), self.max_model_len, 1)
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, output_kind=RequestOutputKind.FINAL_ONLY)
        final = None
        async for output in self._llm.generate(_token_prompt(token_ids), params, request_id):
            final = output
        assert final is not None and final.prompt_logprobs is not None
        return [entry[tid].logprob for tid, entry in zip(token_ids[1:], final.prompt_logprobs[1:], strict=True)]

    def kernels(self) -> dict[str, str]:
        """Linear kernel vLLM chose per quantization scheme ({"CompressedTensorsW8A8Int8": "CPUInt8..."}),
        read from the engine's log file; empty without one or for unquantized models."""
        if self.log_file is None or not self.log_file.is_file():
            return {}
        found = re.findall(r"(?:Selected|Using) (\w+Kernel\w*) for (\w+)", self.log_file.read_text(errors="replace"))
        return {scheme: kernel for kernel, scheme in found}

    def num_unfinished_requests(self) -> int:
        # vLLM 0.26 (the GPU build) has no AsyncLLM.get_num_unfinished_requests; its output processor does
        return self._llm.output_processor.get_num_unfinished_requests()

    def stats(self) -> EngineStats:
        if self.num_unfinished_requests() == 0:  # the last step's snapshot predates the last finish
            self._stats.running = self._stats.waiting = 0
        return self._stats

    async def shutdown(self, drain_timeout_s: float) -> None:
        if self.state is EngineState.STOPPED:
            return
        if self.dead:  # nothing left to drain: the engine-core process is gone
            drain_timeout_s = 0
            self._inflight.clear()
        self.state = EngineState.DRAINING
        deadline = time.monotonic() + drain_timeout_s
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._inflight:
            log.warning("aborting %d requests still running after %.0f s", len(self._inflight), drain_timeout_s)
            await self._llm.abort(list(self._inflight))
        self._llm.shutdown()
        self.state = EngineState.STOPPED
        log.info("engine stopped")


class EngineLost(Retryable):
    """The engine-core process died under a request; the watchdog restarts it and the request can be sent again."""


class EngineSettingsError(ValueError):
    """vLLM refused the engine arguments at start (invalid parallelism, a context the model cannot hold, ...)."""


def _first_error(exc: ValueError) -> str:
    """vLLM's own words for what is wrong: a pydantic error's message, or the exception's text."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):
            return str(errors()[0]["msg"]).removeprefix("Value error, ")
    return str(exc)


def _speculative(config: Any) -> dict[str, Any] | None:
    """Speculative decoding in effect: method, tokens per draft, draft model."""
    if config is None:
        return None
    found = {"method": getattr(config, "method", None), "num_speculative_tokens": config.num_speculative_tokens}
    if getattr(config, "model", None) and found["method"] != "ngram":
        found["draft_model"] = str(config.model)
    return found


def _parallelism(pc: Any) -> dict[str, int | str]:
    """The parallelism vLLM put in effect, under its EngineArgs names."""
    names = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "data_parallel_size_local")
    found: dict[str, int | str] = {name: getattr(pc, name) for name in names if hasattr(pc, name)}
    found["distributed_executor_backend"] = str(pc.distributed_executor_backend or "uni")
    found["nnodes"] = getattr(pc, "nnodes", 1)
    return found


def _file_logging(log_file: Path) -> Any:
    """A vLLM LoggingConfig: its usual stderr handler plus a copy of everything in `log_file`."""
    from vllm.config.logging import LoggingConfig
    from vllm.logger import DEFAULT_LOGGING_CONFIG

    config = copy.deepcopy(DEFAULT_LOGGING_CONFIG)
    config["handlers"]["vllm"]["stream"] = os.environ.get("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    config["handlers"]["file"] = {
        "class": "logging.FileHandler",
        "formatter": "vllm",
        "level": "INFO",
        "filename": str(log_file),
        "mode": "a",  # several processes write it (main, engine core, worker): append, never truncate
    }
    config["loggers"]["vllm"]["handlers"] = ["vllm", "file"]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.unlink(missing_ok=True)  # one engine's log: kernels() must not read a previous engine's choices
    config_path = log_file.with_suffix(".logging.json")
    config_path.write_text(json.dumps(config))
    return LoggingConfig(pylogging_config_file=str(config_path))


def _tokenizer(llm: Any) -> Any:
    """vLLM's tokenizer for the served model, as its own loader builds it from the model config, but without
    the thread-pool wrapper of `llm.get_tokenizer()`. We tokenize on the event loop thread; under load on the
    GPU machine (64 concurrent `generate`), py-spy put ~1.1 ms a call in the wrapped tokenizer's chat template
    and none once we used this one (BENCHMARKS.md)."""
    from vllm.tokenizers.registry import cached_tokenizer_from_config

    return cached_tokenizer_from_config(llm.vllm_config.model_config)


def serving_args(engine_args: dict[str, Any], model_name: str, log_file: Path | None = None) -> dict[str, Any]:
    """vLLM's engine arguments as this server starts them: eager and a bounded KV cache on the CPU, `dtype auto`
    resolved, the served name, vLLM's log copied to `log_file`. vLLM must be imported (import_vllm)."""
    from vllm.platforms import current_platform

    args = dict(engine_args)
    if current_platform.is_cpu():
        args.setdefault("enforce_eager", True)
        args.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
    args["dtype"] = resolve_dtype(args.get("dtype", "auto"))
    args.setdefault("served_model_name", model_name)
    if log_file is not None:
        try:
            args["logging_config"] = _file_logging(log_file)
        except ImportError:  # vLLM 0.26 (the GPU build) has no LoggingConfig: kernels() then reports none
            log.warning("this vLLM cannot copy its log to %s; kernel names will not be reported", log_file)
    return args


def engine_args_of(args: dict[str, Any]) -> Any:
    """vLLM's AsyncEngineArgs for `serving_args`' result."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(**args)


def _cpu_has_bf16() -> bool:
    """Whether the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown (not Linux): keep vLLM's choice
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(requested: str) -> str:
    """`auto` means float32 on a CPU without bf16 instructions, where vLLM's bf16 choice falls back to
    slow kernels (prefill measured ~4x slower here); anything else is passed through."""
    from vllm.platforms import current_platform

    if requested == "auto" and current_platform.is_cpu() and not _cpu_has_bf16():
        log.info("this CPU has no bf16 instructions: serving in float32 (set --dtype to override)")
        return "float32"
    return requested


def _stat_loggers(stats: EngineStats) -> list[Any]:
    """vLLM stat loggers for one engine: `_stats_recorder` into `stats`, and vLLM's Prometheus logger writing
    this engine's `vllm:*` series into a registry of its own, bound to `stats` for `metrics://prometheus`.
    vLLM's default logger writes the process-global registry, which every new AsyncLLM (the embedder,
    quantize's measuring engines, the engine after a swap) clears and refills with its own series."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    try:
        prometheus = _prometheus_logger(registry)
    except (ImportError, AttributeError, TypeError) as exc:  # another vLLM's internals: export no vllm:* series
        log.warning("cannot give this engine its own Prometheus registry (%s); vllm:* series not exported", exc)
        return [_stats_recorder(stats)]
    bind_engine_series(stats, registry)
    return [_stats_recorder(stats), prometheus]


def _prometheus_logger(registry: Any) -> type:
    """vLLM's PrometheusStatLogger (and its speculative-decoding, connector and perf parts) with every metric
    it creates registered in `registry` instead of prometheus_client's global REGISTRY."""
    import prometheus_client
    from vllm.v1.metrics.loggers import AggregateStatLoggerBase, PrometheusStatLogger

    if not issubclass(PrometheusStatLogger, AggregateStatLoggerBase):  # built once for all engines, by index
        raise TypeError("this vLLM builds its Prometheus logger per engine")

    def bound(metric: type) -> type:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            metric.__init__(self, *args, **(kwargs | {"registry": registry}))

        return type(metric.__name__, (metric,), {"__init__": __init__})

    metric_classes = {
        "_counter_cls": bound(prometheus_client.Counter),
        "_gauge_cls": bound(prometheus_client.Gauge),
        "_histogram_cls": bound(prometheus_client.Histogram),
    }
    parts = {}
    for attribute in ("_spec_decoding_cls", "_kv_connector_cls", "_ec_connector_cls", "_perf_metrics_cls"):
        if (part := getattr(PrometheusStatLogger, attribute, None)) is not None:
            own = {name: cls for name, cls in metric_classes.items() if hasattr(part, name)}
            parts[attribute] = type(part.__name__, (part,), own)
    for attribute in metric_classes:
        getattr(PrometheusStatLogger, attribute)  # AttributeError on a vLLM without these hooks
    return type("EnginePrometheusStatLogger", (PrometheusStatLogger,), metric_classes | parts)


def _stats_recorder(target: EngineStats) -> Any:
    """A vLLM stat logger class that copies each step's scheduler stats into `target`."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class StatsRecorder(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(
            self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0
        ) -> None:
            if scheduler_stats is None:
                return
            target.running = scheduler_stats.num_running_reqs
            target.waiting = scheduler_stats.num_waiting_reqs
            target.kv_cache_usage = scheduler_stats.kv_cache_usage
            target.prefix_cache_queries += scheduler_stats.prefix_cache_stats.queries
            target.prefix_cache_hits += scheduler_stats.prefix_cache_stats.hits
            if (spec := getattr(scheduler_stats, "spec_decoding_stats", None)) is not None:
                target.spec_drafts += spec.num_drafts
                target.spec_draft_tokens += spec.num_draft_tokens
                target.spec_accepted_tokens += spec.num_accepted_tokens

        def log_engine_initialized(self) -> None:
            pass

    return StatsRecorder


def _token_prompt(token_ids: list[int], cache_salt: str | None = None, params: Any = None) -> dict[str, Any]:
    """Token ids as vLLM's rendered input where it has one (`tokens_input`: checked on the calling loop), else
    as a prompt dict, which vLLM 0.32 sends through its renderer's worker thread: a thread hop per request for
    token ids that need no rendering. Structured output keeps the thread: its check compiles the grammar, which
    must not hold the loop (a batch of constrained items would, for seconds)."""
    rendered = _tokens_input()
    if rendered is None or getattr(params, "structured_outputs", None) is not None:
        return {"prompt_token_ids": token_ids} | ({"cache_salt": cache_salt} if cache_salt else {})
    return dict(rendered(token_ids, cache_salt=cache_salt or None))


@functools.cache
def _tokens_input() -> Callable[..., Any] | None:
    try:
        from vllm.inputs.engine import tokens_input
    except ImportError:  # vLLM before the rendered inputs (the GPU image's 0.26)
        return None
    return tokens_input


def _completion(output: Any, options: SamplingOptions) -> Completion:
    """Our result from vLLM's final RequestOutput and its per-request timing stats."""
    samples = [_sample(choice, options) for choice in output.outputs]
    prompt_tokens = len(output.prompt_token_ids or ())
    completion_tokens = sum(s.completion_tokens for s in samples)
    longest = max(s.completion_tokens for s in samples)
    stats = output.metrics
    total_ms = queue_ms = ttft_ms = tpot_ms = None
    if stats is not None and stats.first_token_ts:
        queue_ms = max(0.0, (stats.scheduled_ts - stats.queued_ts) * 1000)
        ttft_ms = stats.first_token_latency * 1000
        decode_ms = (stats.last_token_ts - stats.first_token_ts) * 1000
        total_ms = ttft_ms + decode_ms
        if longest > 1:
            tpot_ms = decode_ms / (longest - 1)
    total_ms = total_ms or 0.0
    first = samples[0]
    prompt_logprobs = None
    if options.prompt_logprobs is not None and output.prompt_logprobs is not None:
        ids, top = output.prompt_token_ids, options.prompt_logprobs
        prompt_logprobs = [
            None if at is None else token_logprob(ids[i], at, top) for i, at in enumerate(output.prompt_logprobs)
        ]
    return Completion(
        text=first.text,
        finish_reason=first.finish_reason,
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            cached_tokens=getattr(output, "num_cached_tokens", None),
        ),
        timing=Timing(
            queue_ms=queue_ms,
            ttft_ms=ttft_ms,
            tpot_ms=tpot_ms,
            total_ms=total_ms,
            tokens_per_s=tokens_per_s(completion_tokens, total_ms),
        ),
        confidence=first.confidence,
        logprobs=first.logprobs,
        prompt_logprobs=prompt_logprobs,
        samples=samples if len(samples) > 1 else None,
    )


def _sample(choice: Any, options: SamplingOptions) -> Sample:
    """One of vLLM's CompletionOutputs, with its tokens' log-probabilities when asked for."""
    logprobs = None
    if options.logprobs is not None and choice.logprobs is not None:
        logprobs = [
            token_logprob(tid, at, options.logprobs) for tid, at in zip(choice.token_ids, choice.logprobs, strict=True)
        ]
    return Sample(
        text=choice.text,
        finish_reason=choice.finish_reason,
        completion_tokens=len(choice.token_ids),
        confidence=Confidence.of([t.logprob for t in logprobs]) if logprobs is not None else None,
        logprobs=logprobs,
    )


def _version(path: str) -> tuple[int, int]:
    """Which files an adapter folder holds now: its config's inode and modification time."""
    try:
        stat = os.stat(os.path.join(path, "adapter_config.json"))
    except OSError:
        return (0, 0)
    return (stat.st_ino, stat.st_mtime_ns)
