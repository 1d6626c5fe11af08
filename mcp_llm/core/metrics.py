"""Serving metrics: per-request latencies into prometheus_client and a sliding window for percentiles.

Per request (from vLLM's own timestamps): queue time, TTFT, TPOT, end-to-end latency, tokens.
Engine-wide (from vLLM's scheduler stats): running and waiting requests, KV-cache use, prefix-cache hits.
The Prometheus exposition adds vLLM's own `vllm:*` series of the serving engine only (each engine keeps them
in a registry of its own, bound to its EngineStats), labelled `role="generator"`.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from mcp_llm.engine.base import EngineStats, engine_series
from mcp_llm.schemas import Completion

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SERIES = ("queue_ms", "ttft_ms", "tpot_ms", "e2e_ms")


@dataclass
class _Sample:
    at: float
    ok: bool
    output_tokens: int
    values: dict[str, float | None]


@dataclass
class Metrics:
    """One registry per server; a window of recent requests for p50/p95/p99 and rates."""

    window_s: float = 60.0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _window: deque[_Sample] = field(default_factory=deque)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("mcp_llm_requests", "Requests finished, by status.", ["status"], registry=r)
        self.prompt_tokens = Counter("mcp_llm_prompt_tokens", "Prompt tokens processed.", registry=r)
        self.generation_tokens = Counter("mcp_llm_generation_tokens", "Tokens generated.", registry=r)
        self.client_tokens = Counter(
            "mcp_llm_client_tokens", "Tokens per client: kind prompt or output.", ["client", "kind"], registry=r
        )
        self.histograms = {
            "queue_ms": Histogram(
                "mcp_llm_request_queue_seconds", "Time waiting for the scheduler.", buckets=LATENCY_BUCKETS, registry=r
            ),
            "ttft_ms": Histogram(
                "mcp_llm_request_ttft_seconds", "Time to first token.", buckets=LATENCY_BUCKETS, registry=r
            ),
            "tpot_ms": Histogram(
                "mcp_llm_request_tpot_seconds",
                "Mean time per output token after the first.",
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            "e2e_ms": Histogram(
                "mcp_llm_request_e2e_seconds", "Arrival to last token.", buckets=LATENCY_BUCKETS, registry=r
            ),
        }
        self.running = Gauge("mcp_llm_running_requests", "Requests in the running batch.", registry=r)
        self.waiting = Gauge("mcp_llm_waiting_requests", "Requests queued for the engine.", registry=r)
        self.kv_cache = Gauge("mcp_llm_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use.", registry=r)
        self.prefix_hit = Gauge("mcp_llm_prefix_cache_hit_ratio", "Prefix-cache hits / queries, lifetime.", registry=r)

    def observe(self, completion: Completion, client: str | None = None) -> None:
        """Record one finished request (and its tokens against `client`)."""
        if client is not None:
            self.client_tokens.labels(client=client, kind="prompt").inc(completion.usage.prompt_tokens)
            self.client_tokens.labels(client=client, kind="output").inc(completion.usage.completion_tokens)
        t = completion.timing
        values = {"queue_ms": t.queue_ms, "ttft_ms": t.ttft_ms, "tpot_ms": t.tpot_ms, "e2e_ms": t.total_ms}
        for name, value in values.items():
            if value is not None:
                self.histograms[name].observe(value / 1000)
        self.requests.labels(status="ok").inc()
        self.prompt_tokens.inc(completion.usage.prompt_tokens)
        self.generation_tokens.inc(completion.usage.completion_tokens)
        self._window.append(_Sample(time.monotonic(), True, completion.usage.completion_tokens, values))
        self._trim()

    def observe_error(self, status: str = "error") -> None:
        self.requests.labels(status=status).inc()
        self._window.append(_Sample(time.monotonic(), False, 0, {}))
        self._trim()

    def _trim(self) -> None:
        horizon = time.monotonic() - self.window_s
        while self._window and self._window[0].at < horizon:
            self._window.popleft()

    def update_engine(self, stats: EngineStats) -> None:
        self.running.set(stats.running)
        self.waiting.set(stats.waiting)
        self.kv_cache.set(stats.kv_cache_usage)
        if stats.prefix_cache_hit_rate is not None:
            self.prefix_hit.set(stats.prefix_cache_hit_rate)

    def snapshot(self, stats: EngineStats) -> dict:
        """The `metrics://engine` document: window percentiles, rates, engine state, lifetime totals."""
        self.update_engine(stats)
        self._trim()
        samples = list(self._window)
        span = min(self.window_s, max(1e-9, time.monotonic() - samples[0].at)) if samples else self.window_s
        return {
            "window_s": self.window_s,
            "requests_in_window": len(samples),
            "errors_in_window": sum(not s.ok for s in samples),
            "requests_per_s": len(samples) / span if samples else 0.0,
            "output_tokens_per_s": sum(s.output_tokens for s in samples) / span if samples else 0.0,
            "latency_ms": {name: percentiles([s.values.get(name) for s in samples]) for name in SERIES},
            "engine": {
                "running_requests": stats.running,
                "waiting_requests": stats.waiting,
                "kv_cache_usage": stats.kv_cache_usage,
                "prefix_cache_hit_rate": stats.prefix_cache_hit_rate,
                "speculative_decoding": stats.speculative(),
            },
            "totals": {
                "requests": _total(self.requests),
                "prompt_tokens": _total(self.prompt_tokens),
                "generation_tokens": _total(self.generation_tokens),
            },
        }

    def exposition(self, stats: EngineStats) -> bytes:
        """Prometheus text format: our series, then the serving engine's own `vllm:*` series (the engine whose
        `stats` these are, never the embedder's or a measuring engine's), labelled role="generator"."""
        self.update_engine(stats)
        series = engine_series(stats)
        own = generate_latest(self.registry)
        return own if series is None else own + generate_latest(Labelled(series, {"role": "generator"}))


class Labelled(Collector):
    """A registry's metric families with constant labels added to every sample."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.registry, self.labels = registry, labels

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            family.samples = [s._replace(labels={**s.labels, **self.labels}) for s in family.samples]
            yield family


def _total(metric: Counter) -> float:
    """A counter's value summed over its labels."""
    return sum(s.value for family in metric.collect() for s in family.samples if s.name.endswith("_total"))


def percentiles(values: list[float | None]) -> dict[str, float | None]:
    data = sorted(v for v in values if v is not None)
    if not data:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    if len(data) == 1:
        return {"p50": data[0], "p95": data[0], "p99": data[0], "mean": data[0]}
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "mean": statistics.fmean(data)}
