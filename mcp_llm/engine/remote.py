"""A remote vLLM deployment over its OpenAI-compatible API: one `vllm serve`, a fleet behind a router, llm-d.

Requests go to `/v1/completions` as token ids (we tokenize with the served model's own tokenizer, so token
budgets, chat templates and counts are exactly those of the in-process engine), streamed so that TTFT and
TPOT are measured and closing the stream aborts the request on the server; unstreamed (one JSON answer, no
per-token work here) when no caller wants live text and the server reports each request's own TTFT and TPOT
(`vllm serve --enable-per-request-metrics`). Completions go through aiohttp (its C HTTP parser: on the H200,
httpx's pool and per-chunk parsing saturated our event loop at 64 streams), the rest through httpx. vLLM's own
request options (structured outputs, `ignore_eos`, `cache_salt`) travel in the body; a LoRA adapter is the model
name.
Scheduler stats come from the remote `/metrics`, polled in the background and parsed with prometheus_client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families

from mcp_llm.engine.base import (
    Adapter,
    EngineState,
    EngineStats,
    Tokenizing,
    output_budget,
    routing_key,
    token_logprob,
)
from mcp_llm.engine.parsers import Parsing
from mcp_llm.errors import Busy, InputError, Retryable, Unavailable
from mcp_llm.schema_guard import check_forwardable
from mcp_llm.schemas import (
    Completion,
    Confidence,
    EngineConfig,
    Sample,
    SamplingOptions,
    Timing,
    TokenLogprob,
    Usage,
    tokens_per_s,
)
from mcp_llm.settings import Settings

log = logging.getLogger(__name__)


class RemoteUnavailable(Retryable):
    """The remote deployment did not answer (connection refused or lost, timeout, 5xx): the request may be
    sent again once it is back."""


class RemoteEngine(Tokenizing, Parsing):
    """An `EngineBackend` that forwards to a remote vLLM OpenAI-compatible server."""

    backend = "openai"

    def __init__(self, settings: Settings, client: httpx.AsyncClient, model: dict, tokenizer: Any) -> None:
        self._settings = settings
        self._client = client
        self._model = model
        self._tokenizer = tokenizer
        self._stats = EngineStats()
        self._config_labels: dict[str, str] = {}
        self._inflight: set[asyncio.Task] = set()
        self._poller: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self.server_timing = False  # the remote reports each request's TTFT and TPOT (unstreamed requests suffice)
        self.base_url = str(client.base_url).rstrip("/")
        self.adapter_names: list[str] = []
        self.state = EngineState.READY
        self.detail = ""

    @classmethod
    async def start(cls, settings: Settings) -> RemoteEngine:
        """Connect to `settings.base_url`, find the served model and its tokenizer, start polling `/metrics`.

        Raises Unavailable naming the URL when nothing answers there."""
        assert settings.base_url is not None
        base = settings.base_url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        timeout = httpx.Timeout(settings.remote_timeout_s, connect=settings.remote_connect_timeout_s)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        client = httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, limits=limits)
        try:
            models = await _get_json(client, "/v1/models")
        except Exception:
            await client.aclose()
            raise
        bases = [m for m in models.get("data", []) if not m.get("parent")]
        if not bases:
            await client.aclose()
            raise Unavailable(f"The vLLM server at {base} serves no model (GET /v1/models listed none).")
        model = next((m for m in bases if m["id"] == settings.served_model_name), bases[0])
        tokenizer_name = settings.tokenizer or model.get("root") or model["id"]
        tokenizer = await asyncio.to_thread(_load_tokenizer, tokenizer_name, settings.trust_remote_code)
        engine = cls(settings, client, model, tokenizer)
        engine.adapter_names = sorted(m["id"] for m in models["data"] if m.get("parent"))
        await engine._poll_metrics()
        engine.server_timing = settings.remote_stream == "auto" and await engine._reports_timing()
        engine._poller = asyncio.create_task(engine._poll_forever())
        log.info("remote vLLM at %s serves %s (tokenizer %s)", base, model["id"], tokenizer_name)
        return engine

    # --- identity and configuration ---
    @property
    def model_name(self) -> str:
        return self._model["id"]

    @property
    def max_model_len(self) -> int:
        return int(self._model.get("max_model_len") or self._settings.max_model_len or 2048)

    def config(self) -> EngineConfig:
        labels = self._config_labels
        blocks, block_size = labels.get("num_gpu_blocks"), labels.get("block_size")
        return EngineConfig(
            model=self.model_name,
            model_path=str(self._model.get("root") or self.model_name),
            max_model_len=self.max_model_len,
            block_size=int(block_size) if block_size else None,
            kv_cache_tokens=int(blocks) * int(block_size) if blocks and block_size and blocks != "None" else None,
            enable_prefix_caching=labels.get("enable_prefix_caching") == "True",
            scheduling_policy="priority" if self._settings.prioritized else "fcfs",
            lora=bool(self.adapter_names),
            adapters=self.adapter_names,
            backend=self.backend,
            endpoint=self.base_url,
            state=self.state.value,
        )

    def adapter(self, name: str) -> Adapter:
        """A LoRA adapter the remote serves (started with `--lora-modules name=path`)."""
        if name not in self.adapter_names:
            served = ", ".join(self.adapter_names) or "none"
            raise InputError(
                f"The vLLM server at {self.base_url} serves no adapter {name!r} (it serves: {served}). "
                "Start it with --enable-lora --lora-modules NAME=PATH, or leave `adapter` out."
            )
        return Adapter(name, "")

    # --- requests ---
    def _body(self, token_ids: list[int], options: SamplingOptions, request_id: str, adapter: Adapter | None) -> dict:
        body: dict[str, Any] = {
            "model": adapter.name if adapter else self.model_name,
            "prompt": token_ids,
            "max_tokens": output_budget(len(token_ids), self.max_model_len, options.max_tokens),
            "temperature": options.temperature,
            "top_p": options.top_p,
            "top_k": options.top_k or 0,
            "stop": options.stop,
            "seed": options.seed,
            "presence_penalty": options.presence_penalty,
            "frequency_penalty": options.frequency_penalty,
            "repetition_penalty": options.repetition_penalty,
            "ignore_eos": options.ignore_eos,
            "stream": True,
            "stream_options": {"include_usage": True},
            "request_id": request_id,
        }
        if options.json_schema is not None:
            check_forwardable(options.json_schema)  # a remote vLLM never sees a ref to anything outside the schema
        body["structured_outputs"] = options.structured_outputs()
        body |= {"n": options.n} if options.n > 1 else {}
        body |= {"logprobs": options.logprobs, "prompt_logprobs": options.prompt_logprobs}
        return {k: v for k, v in body.items() if v is not None}

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
        if self.state is not EngineState.READY:
            raise RemoteUnavailable(f"The vLLM server at {self.base_url} is unreachable ({self.detail}); retry later.")
        body = self._body(token_ids, options, request_id, adapter) | ({"cache_salt": cache_salt} if cache_salt else {})
        body |= {"priority": priority} if priority else {}  # vLLM's server takes it under --scheduling-policy priority
        header = {self._settings.remote_session_header: routing_key.get() or request_id}
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            scored = options.prompt_logprobs is not None  # vLLM's server returns them only unstreamed
            if scored or (on_text is None and options.n == 1 and self.server_timing):
                return await self._unstreamed(body, header, token_ids)
            return await self._stream(body, header, len(token_ids), on_text)
        finally:
            self._inflight.discard(task)

    def _completions(self, body: dict, headers: dict[str, str]) -> Any:
        """POST /v1/completions on the shared aiohttp session (made on first use, in the serving loop)."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                sock_connect=self._settings.remote_connect_timeout_s, sock_read=self._settings.remote_timeout_s
            )
            auth = {"Authorization": f"Bearer {self._settings.api_key}"} if self._settings.api_key else {}
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(self.base_url, headers=auth, timeout=timeout, connector=connector)
        return self._session.post("/v1/completions", json=body, headers=headers)

    async def _stream(
        self, body: dict, headers: dict[str, str], prompt_tokens: int, on_text: Callable[[str], None] | None = None
    ) -> Completion:
        """POST a streamed completion and gather its chunks (per sample with `n`); leaving early closes the stream
        (vLLM aborts). Reads whatever bytes have arrived and parses the events in them (several per read under
        load)."""
        started = time.perf_counter()
        first = last = None
        samples: dict[int, _Gathered] = {}
        usage = None
        pending = b""
        try:
            async with self._completions(body, headers) as response:
                if response.status != 200:
                    raise _error_of(response.status, await response.text(), self.base_url)
                try:
                    async for data in response.content.iter_any():
                        *events, pending = (pending + data).split(b"\n\n")
                        now = time.perf_counter()
                        for event in events:
                            if not event.startswith(b"data: ") or event == b"data: [DONE]":
                                continue
                            chunk = json.loads(event[6:])
                            if chunk.get("usage"):
                                usage = chunk["usage"]
                            for choice in chunk.get("choices", ()):
                                last = now
                                first = first or now
                                samples.setdefault(choice.get("index", 0), _Gathered()).add(choice)
                        if on_text is not None and 0 in samples:
                            on_text("".join(samples[0].parts))
                except BaseException:
                    response.close()  # drop the connection: vLLM aborts the request, its slot frees at once
                    raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteUnavailable(f"The vLLM server at {self.base_url} failed mid-request: {_describe(exc)}") from exc
        if usage is None:
            raise RemoteUnavailable(f"The vLLM server at {self.base_url} ended the stream without its usage chunk.")
        return _completion(samples, usage, body.get("logprobs"), prompt_tokens, started, first, last)

    async def _post(self, body: dict, headers: dict[str, str]) -> dict:
        """An unstreamed completion's JSON answer; leaving early closes the connection (vLLM aborts)."""
        unstreamed = {k: v for k, v in body.items() if k != "stream_options"} | {"stream": False}
        try:
            async with self._completions(unstreamed, headers) as response:
                try:
                    if response.status != 200:
                        raise _error_of(response.status, await response.text(), self.base_url)
                    return await response.json(loads=json.loads, content_type=None)
                except BaseException:
                    response.close()
                    raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteUnavailable(f"The vLLM server at {self.base_url} failed mid-request: {_describe(exc)}") from exc

    async def _unstreamed(self, body: dict, headers: dict[str, str], token_ids: list[int]) -> Completion:
        """One JSON answer, no per-token work here: TTFT (queue + first token) and TPOT from the server's own
        per-request metrics (when it reports them); with `prompt_logprobs`, each prompt token scored."""
        started = time.perf_counter()
        found = await self._post(body, headers)
        samples: dict[int, _Gathered] = {}
        for choice in found["choices"]:
            samples.setdefault(choice.get("index", 0), _Gathered()).add(choice)
        completion = _completion(samples, found["usage"], body.get("logprobs"), len(token_ids), started, None, None)
        timing = _server_timing(found.get("metrics"))
        update = {"timing": completion.timing.model_copy(update=timing)}
        if body.get("prompt_logprobs") is not None:
            update["prompt_logprobs"] = self._prompt_logprobs(found["choices"][0], token_ids, body["prompt_logprobs"])
        return completion.model_copy(update=update)

    async def _reports_timing(self) -> bool:
        """Whether the remote reports per-request TTFT and TPOT (one unstreamed 1-token request); False when not,
        or when the probe fails (streaming then measures them here)."""
        body = {"model": self.model_name, "prompt": self._tokenizer.encode("Hi"), "max_tokens": 1, "stream": False}
        try:
            found = await self._post(body, {})
        except Exception as exc:
            log.info("remote %s: per-request metrics probe failed (%s): streaming", self.base_url, _describe(exc))
            return False
        reports = bool(_server_timing(found.get("metrics")))
        if not reports:
            log.info(
                "the vLLM server at %s reports no per-request metrics: requests are streamed to time them "
                "(start it with --enable-per-request-metrics to save that work)",
                self.base_url,
            )
        return reports

    def _prompt_logprobs(self, choice: dict, token_ids: list[int], top: int) -> list[TokenLogprob | None]:
        """vLLM's `prompt_logprobs` of a completions choice (per position {token id: {logprob, rank, decoded_token}},
        the first None) in the in-process engine's shape."""
        from vllm.logprobs import Logprob

        if choice.get("prompt_logprobs") is None:
            raise InputError(f"The vLLM server at {self.base_url} returned no prompt_logprobs: leave them out.")
        return [
            None if at is None else token_logprob(tid, {int(k): Logprob(**v) for k, v in at.items()}, top)
            for tid, at in zip(token_ids, choice["prompt_logprobs"], strict=True)
        ]

    async def prompt_logprobs(self, token_ids: list[int], request_id: str) -> list[float]:
        raise InputError(
            "Prompt log-probabilities (quantization quality checks) need the in-process engine: "
            "run them on a server started without --backend openai."
        )

    def kernels(self) -> dict[str, str]:
        return {}

    # --- state ---
    def num_unfinished_requests(self) -> int:
        return len(self._inflight)

    def stats(self) -> EngineStats:
        return self._stats

    async def _poll_metrics(self) -> None:
        """Scheduler stats from the remote `/metrics` (summed over its engines); the state follows reachability."""
        try:
            response = await self._client.get("/metrics", timeout=self._settings.remote_connect_timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            if self.state is EngineState.READY:
                log.warning("vLLM server at %s unreachable: %s", self.base_url, _describe(exc))
            self.state, self.detail = EngineState.FAILED, _describe(exc)
            return
        if self.state is EngineState.FAILED:
            log.info("vLLM server at %s reachable again", self.base_url)
        self.state, self.detail = EngineState.READY, ""
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
                if sample.name == "vllm:cache_config_info":
                    self._config_labels = dict(sample.labels)
        self._stats.running = int(totals.get("vllm:num_requests_running", 0))
        self._stats.waiting = int(totals.get("vllm:num_requests_waiting", 0))
        self._stats.kv_cache_usage = totals.get("vllm:kv_cache_usage_perc", 0.0)
        self._stats.prefix_cache_queries = int(totals.get("vllm:prefix_cache_queries_total", 0))
        self._stats.prefix_cache_hits = int(totals.get("vllm:prefix_cache_hits_total", 0))
        self._stats.spec_drafts = int(totals.get("vllm:spec_decode_num_drafts_total", 0))
        self._stats.spec_draft_tokens = int(totals.get("vllm:spec_decode_num_draft_tokens_total", 0))
        self._stats.spec_accepted_tokens = int(totals.get("vllm:spec_decode_num_accepted_tokens_total", 0))

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.remote_stats_interval_s)
            await self._poll_metrics()

    async def shutdown(self, drain_timeout_s: float) -> None:
        """Let in-flight requests finish for up to the timeout, then close their streams (the server aborts them)."""
        if self.state is EngineState.STOPPED:
            return
        self.state = EngineState.DRAINING
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=drain_timeout_s or None)
            for task in pending:
                task.cancel()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self._client.aclose()
        if self._session is not None:
            await self._session.close()
        self.state = EngineState.STOPPED


class _Gathered:
    """One sample's streamed chunks: its text, finish reason, and tokens with log-probabilities (OpenAI's
    completions shape: `tokens`, `token_logprobs`, `top_logprobs`)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.tokens: list[TokenLogprob] = []

    def add(self, choice: dict) -> None:
        self.parts.append(choice.get("text") or "")
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        found = choice.get("logprobs") or {}
        tops = found.get("top_logprobs") or [None] * len(found.get("tokens") or ())
        for token, logprob, top in zip(
            found.get("tokens") or (), found.get("token_logprobs") or (), tops, strict=False
        ):
            alternatives = [TokenLogprob(token=t, logprob=lp) for t, lp in (top or {}).items()]
            self.tokens.append(TokenLogprob(token=token, logprob=logprob, top=alternatives or None))

    def sample(self, logprobs: int | None) -> Sample:
        tokens = self.tokens if logprobs is not None else None
        return Sample(
            text="".join(self.parts),
            finish_reason=self.finish_reason,
            completion_tokens=len(self.tokens) if tokens is not None else len(self.parts),
            confidence=Confidence.of([t.logprob for t in tokens]) if tokens is not None else None,
            logprobs=tokens,
        )


def _completion(
    samples: dict[int, _Gathered],
    usage: dict,
    logprobs: int | None,
    prompt_tokens: int,
    started: float,
    first: float | None,
    last: float | None,
) -> Completion:
    """The completion of a remote request: its samples gathered (by index), vLLM's usage, and the times it was
    sent, gave its first output and its last (first and last None when unstreamed)."""
    completion_tokens = int(usage.get("completion_tokens", 0))
    gathered = [samples[i].sample(logprobs) for i in sorted(samples)] or [_Gathered().sample(None)]
    longest = max(s.completion_tokens for s in gathered) if len(gathered) > 1 else completion_tokens
    ttft_ms = (first - started) * 1000 if first else None
    total_ms = ((last or time.perf_counter()) - started) * 1000
    tpot_ms = (last - first) * 1000 / (longest - 1) if first and last and longest > 1 else None
    head = gathered[0]
    return Completion(
        text=head.text,
        finish_reason=head.finish_reason,
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens", prompt_tokens)),
            completion_tokens=completion_tokens,
            total_tokens=int(usage.get("prompt_tokens", prompt_tokens)) + completion_tokens,
            cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        ),
        timing=Timing(
            ttft_ms=ttft_ms,
            tpot_ms=tpot_ms,
            total_ms=total_ms,
            tokens_per_s=tokens_per_s(completion_tokens, total_ms),
        ),
        confidence=head.confidence,
        logprobs=head.logprobs,
        samples=gathered if len(gathered) > 1 else None,
    )


def _load_tokenizer(name: str, trust_remote_code: bool) -> Any:
    """The served model's tokenizer, loaded the way vLLM loads it."""
    from vllm.tokenizers.registry import get_tokenizer

    return get_tokenizer(name, trust_remote_code=trust_remote_code)


async def _get_json(client: httpx.AsyncClient, path: str) -> Any:
    try:
        response = await client.get(path)
    except httpx.TransportError as exc:
        raise RemoteUnavailable(f"No vLLM server answers at {client.base_url}: {_describe(exc)}") from exc
    if response.status_code != 200:
        raise _http_error(response, str(client.base_url))
    return response.json()


def _http_error(response: httpx.Response, base_url: str) -> Exception:
    """Our error for a non-200 httpx answer (see _error_of)."""
    return _error_of(response.status_code, response.text, base_url)


def _error_of(status: int, text: str, base_url: str) -> Exception:
    """Our error for a non-200 answer: 5xx may pass (retry), 429 is busy, 4xx means the request must change."""
    try:
        detail = json.loads(text).get("error", {}).get("message") or text
    except (ValueError, AttributeError):
        detail = text
    detail = str(detail)[:500]
    where = f"The vLLM server at {base_url}"
    if status >= 500:
        return RemoteUnavailable(f"{where} failed ({status}): {detail}")
    if status == 429:
        return Busy(f"{where} is busy (429): {detail}")
    if status in (401, 403):
        return Unavailable(f"{where} refused our credentials ({status}): check --api-key.")
    return InputError(f"{where} rejected the request ({status}): {detail}")


def _server_timing(metrics: dict | None) -> dict[str, float]:
    """TTFT (queue + first token), queue time and TPOT from vLLM's per-request metrics; empty when it sent none."""
    if not metrics or metrics.get("time_to_first_token_ms") is None:
        return {}
    queue = metrics.get("queue_time_ms")
    timing = {"ttft_ms": metrics["time_to_first_token_ms"] + (queue or 0.0), "queue_ms": queue}
    return timing | ({"tpot_ms": metrics["mean_itl_ms"]} if metrics.get("mean_itl_ms") else {})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
