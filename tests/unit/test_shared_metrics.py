"""Prometheus text across front-ends (core/shared_metrics): each family once, every sample labelled with its
front-end, the server's totals a sum over them; a front-end's own text is always fresh, and one that stopped
publishing drops out."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mcp_llm.core import shared_metrics


def exposition(requests: int) -> bytes:
    registry = CollectorRegistry()
    Counter("mcp_llm_requests", "Requests.", ["tool"], registry=registry).labels("generate").inc(requests)
    Histogram("mcp_llm_ttft_seconds", "TTFT.", registry=registry).observe(0.1 * requests)
    return generate_latest(registry)


def samples(text: bytes, name: str) -> dict[str, float]:
    """front_end -> value of the samples called `name`."""
    return {
        s.labels["front_end"]: s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if s.name == name
    }


def test_each_family_once_with_every_front_ends_samples() -> None:
    text = shared_metrics.merged({"0": exposition(2), "1": exposition(3)})
    names = [family.name for family in text_string_to_metric_families(text.decode())]
    assert len(names) == len(set(names)), names
    assert text.decode().count("# TYPE mcp_llm_requests_total counter") == 1
    assert samples(text, "mcp_llm_requests_total") == {"0": 2.0, "1": 3.0}
    assert samples(text, "mcp_llm_ttft_seconds_count") == {"0": 1.0, "1": 1.0}
    assert sum(samples(text, "mcp_llm_ttft_seconds_sum").values()) == 0.1 * 2 + 0.1 * 3


def test_a_scrape_has_its_own_text_fresh_and_drops_a_silent_front_end(tmp_path: Path) -> None:
    shared_metrics.publish(tmp_path, 0, exposition(1))  # this front-end's older text: replaced by its own
    shared_metrics.publish(tmp_path, 1, exposition(4))
    shared_metrics.publish(tmp_path, 2, exposition(9))
    silent = tmp_path / shared_metrics.FOLDER / "metrics-2.prom"
    old = time.time() - shared_metrics.STALE_AFTER_S - 1
    os.utime(silent, (old, old))
    text = shared_metrics.gathered(tmp_path, 0, exposition(5))
    assert samples(text, "mcp_llm_requests_total") == {"0": 5.0, "1": 4.0}
    assert not list((tmp_path / shared_metrics.FOLDER).glob("*.tmp"))
