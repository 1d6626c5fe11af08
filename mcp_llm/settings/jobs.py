"""Long work: batch jobs, their leases and retries, progress and Tasks."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from pydantic import BaseModel, Field


class JobSettings(BaseModel):
    """Long work: batch jobs, their leases and retries, progress and Tasks."""

    job_lease_s: float = Field(
        30.0, ge=3, description="Servers sharing a database renew their jobs' leases; one not renewed is taken over."
    )
    item_retry_s: float = Field(
        300.0, ge=0, description="How long a batch item is retried after its engine went away (swap, remote down)."
    )
    progress_interval_s: float = Field(
        0.5, gt=0, description="How often a long tool reports progress, also when nothing finished (keep-alive)."
    )
    task_poll_interval_ms: int = Field(1000, ge=100, description="Polling interval suggested to clients of tasks.")
    job_window: int | None = Field(
        None,
        ge=1,
        description="Batch items in the engine at once across all jobs, handed round-robin across clients "
        "(default: the engine's max_num_seqs less an eighth, kept free for interactive calls and lent to bulk work "
        "while no interactive call has run for 2 s; a value set here is a fixed window).",
    )
    flush_interval_s: float = Field(0.2, gt=0, description="How often buffered results are written to SQLite.")
