"""Where state lives (SQLite database, model store) and what is logged."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mcp-llm"


class StorageSettings(BaseModel):
    """Where state lives (SQLite database, model store) and what is logged."""

    data_dir: Path = Field(default_factory=_default_data_dir, description="Database (jobs, request log) lives here.")
    models_dir: Path | None = Field(None, description="Prepared models (default: <data_dir>/models).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_request_text: bool = Field(False, description="Keep prompt and completion text in the request log.")
    request_log_max_rows: int = Field(100_000, ge=1, description="Request-log rows kept (oldest dropped).")
    job_retention_s: float = Field(
        30 * 86400, gt=0, description="Finished jobs and their items are deleted after this."
    )
    task_retention_s: float = Field(
        7 * 86400, gt=0, description="Tasks are deleted after this (or after their own ttl, when it is shorter)."
    )
    benchmark_retention_s: float = Field(90 * 86400, gt=0, description="Stored benchmark runs are deleted after this.")
    usage_retention_s: float = Field(400 * 86400, gt=0, description="Per-minute usage rows are deleted after this.")
    conversation_retention_s: float = Field(
        30 * 86400, gt=0, description="Conversations (`chat`) idle this long are deleted with their turns."
    )
    max_database_bytes: int = Field(
        10 << 30, ge=1 << 20, description="A new job is refused while the database is larger than this."
    )
    metrics_window_s: float = Field(60.0, gt=0, description="Sliding window for percentiles and rates.")
    prompts_dir: Path | None = Field(
        None, description="A folder of prompt files (*.md) to serve instead of the bundled ones."
    )
