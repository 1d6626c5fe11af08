"""Prometheus text across front-end processes (`--api-server-count`): each front-end writes its own exposition to
the data dir every second, and whichever front-end a scrape reaches answers with all of them merged, every series
labelled `front_end="i"`. A scrape never jumps between front-ends' counters, and `sum without (front_end)` is the
server's total."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

FOLDER = "front-ends"
STALE_AFTER_S = 30.0  # a front-end that wrote nothing for this long is gone (the server stops then anyway)


def _path(data_dir: Path, front_end: int) -> Path:
    return data_dir / FOLDER / f"metrics-{front_end}.prom"


def publish(data_dir: Path, front_end: int, text: bytes) -> None:
    """This front-end's exposition, replaced whole (a reader never sees half a file)."""
    path = _path(data_dir, front_end)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(text)
    partial.replace(path)


def gathered(data_dir: Path, front_end: int, own: bytes) -> bytes:
    """`own` (this front-end's, fresh) merged with the other front-ends' latest published texts."""
    texts = {str(front_end): own}
    for path in (data_dir / FOLDER).glob("metrics-*.prom"):
        name = path.stem.removeprefix("metrics-")
        try:
            if name != str(front_end) and time.time() - path.stat().st_mtime < STALE_AFTER_S:
                texts[name] = path.read_bytes()
        except OSError:  # replaced or removed while read: that front-end is in the next scrape
            continue
    return merged(texts)


def merged(texts: dict[str, bytes]) -> bytes:
    """Prometheus texts (by front-end) as one exposition: each family once, its samples from every text with a
    `front_end` label."""
    families: dict[str, Metric] = {}
    for front_end, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text.decode()):
            kept = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            kept.samples += [s._replace(labels={**s.labels, "front_end": front_end}) for s in family.samples]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    return generate_latest(registry)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
