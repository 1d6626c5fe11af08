"""Benchmark charts as PNG bytes (matplotlib, headless): throughput and latency against concurrency, one line
per variant, sized to read inline in a chat (Claude Desktop shows image content at about 800 px wide)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from mcp_llm.core.schemas import LevelRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIZE_IN = (12.0, 4.0)
DPI = 100  # 1200 x 400 pixels
PANELS = (
    ("output_tokens_per_s", None, "output tokens/s", "Throughput"),
    ("ttft_ms", "p50", "ms", "Time to first token (p50, p99 dashed)"),
    ("e2e_ms", "p50", "ms", "End-to-end latency (p50, p99 dashed)"),
)


def _pyplot() -> ModuleType:
    """matplotlib's pyplot on the headless Agg backend, imported on first use (~1 s: not before the handshake)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    return plt


def benchmark_chart(rows: Sequence[LevelRow], title: str) -> bytes:
    """Three panels against concurrency: output tok/s, TTFT p50/p99, end-to-end p50/p99."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(PANELS), figsize=SIZE_IN, dpi=DPI, layout="constrained")
    variants = list(dict.fromkeys(r.variant for r in rows))
    for (field, cut, unit, label), ax in zip(PANELS, axes, strict=True):
        for index, variant in enumerate(variants):
            mine = sorted((r for r in rows if r.variant == variant), key=lambda r: r.concurrency)
            xs = [r.concurrency for r in mine]
            color = f"C{index}"
            if cut is None:
                ax.plot(xs, [getattr(r, field) for r in mine], "o-", color=color, label=variant)
                continue
            ax.plot(xs, [getattr(r, field)[cut] for r in mine], "o-", color=color, label=variant)
            ax.plot(xs, [getattr(r, field)["p99"] for r in mine], "o--", color=color, alpha=0.5)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("concurrency")
        ax.set_ylabel(unit)
        ax.set_xscale("log", base=2)
        ax.set_xticks(
            sorted({r.concurrency for r in rows}), labels=[str(c) for c in sorted({r.concurrency for r in rows})]
        )
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title, fontsize=11)
    return _png(figure)


def variant_bars(rows: Sequence[LevelRow], title: str) -> bytes:
    """Variants at one concurrency side by side: output tok/s, and TTFT and end-to-end p95."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=SIZE_IN, dpi=DPI, layout="constrained")
    labels = [r.variant for r in rows]
    places = range(len(rows))
    left.barh(places, [r.output_tokens_per_s for r in rows], color=[f"C{i}" for i in places])
    left.set_title("Throughput", fontsize=10)
    left.set_xlabel("output tokens/s")
    width = 0.4
    right.barh([p - width / 2 for p in places], [r.ttft_ms["p95"] or 0 for r in rows], width, label="TTFT p95")
    right.barh([p + width / 2 for p in places], [r.e2e_ms["p95"] or 0 for r in rows], width, label="e2e p95")
    right.set_title("Latency", fontsize=10)
    right.set_xlabel("ms")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_yticks(list(places), labels=labels, fontsize=8)
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
    figure.suptitle(title, fontsize=11)
    return _png(figure)


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    _pyplot().close(figure)
    return out.getvalue()
