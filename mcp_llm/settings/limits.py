"""Bounds on what one call or one client may take."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from pydantic import BaseModel, Field


class LimitSettings(BaseModel):
    """Bounds on what one call or one client may take."""

    max_inflight_total: int = Field(512, ge=1, description="Most `generate` calls in flight at once; more are busy.")
    max_inflight_per_client: int = Field(128, ge=1, description="Most `generate` calls in flight per client.")
    max_batch_items: int = Field(10_000, ge=1, description="Most items one `batch` call may hold.")
    max_embed_texts: int = Field(256, ge=1, description="Most texts one `embed` call may hold.")
    max_result_chars: int = Field(
        60_000, ge=1000, description="Larger tool results become a summary and a link to paged results."
    )
    max_sampling_calls: int = Field(20, ge=1, le=200, description="Most sampling requests one tool call may make.")
    benchmark_budget_s: float = Field(
        900.0, ge=10, description="Longest a `benchmark` or `tune_serving` call may run (refused with the estimate)."
    )
