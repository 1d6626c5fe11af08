"""Benchmark charts as PNG bytes (matplotlib, headless): throughput and latency against concurrency, one line
per variant, sized to read inline in a chat (Claude Desktop shows image content at about 800 px wide)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.pyplot as plt

from mcp_llm.loadtest import LevelRow

SIZE_IN = (12.0, 4.0)
DPI = 100  # 1200 x 400 pixels
PANELS = (
    ("output_tokens_per_s", None, "output tokens/s", "Throughput"),
    ("ttft_ms", "p50", "ms", "Time to first token (p50, p99 dashed)"),
    ("e2e_ms", "p50", "ms", "End-to-end latency (p50, p99 dashed)"),
)


def benchmark_chart(rows: Sequence[LevelRow], title: str) -> bytes:
    """Three panels against concurrency: output tok/s, TTFT p50/p99, end-to-end p50/p99."""
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
    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()
