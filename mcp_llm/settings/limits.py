"""Bounds on what one call or one client may take."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

QUOTA = "Quota of each `user`-role client (unset: none; a quota file overrides per role and client): "


class Limits(BaseModel):
    """One client's (or role's) quotas; None: no limit."""

    model_config = ConfigDict(extra="forbid")
    prompt_tokens_per_minute: int | None = Field(None, ge=0)
    output_tokens_per_minute: int | None = Field(None, ge=0)
    prompt_tokens_per_day: int | None = Field(None, ge=0)
    output_tokens_per_day: int | None = Field(None, ge=0)
    concurrent_jobs: int | None = Field(None, ge=0)
    queued_items: int | None = Field(None, ge=0)
    training_runs_per_day: int | None = Field(None, ge=0)


class QuotaFile(BaseModel):
    """The quota file (TOML): `[roles.<role>]` and `[clients.<name>]` tables of Limits fields."""

    model_config = ConfigDict(extra="forbid")
    roles: dict[str, Limits] = Field(default_factory=dict)
    clients: dict[str, Limits] = Field(default_factory=dict)


def load_quota_file(path: Path | None) -> QuotaFile:
    """The quota file, checked; ValueError naming the file and what is wrong."""
    if path is None:
        return QuotaFile()
    try:
        return QuotaFile.model_validate(tomllib.loads(path.read_text()))
    except OSError as exc:
        raise ValueError(f"quota_file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"quota_file {path}: {exc}") from exc


class LimitSettings(BaseModel):
    """Bounds on what one call or one client may take."""

    max_inflight_total: int = Field(512, ge=1, description="Most `generate` calls in flight at once; more are busy.")
    max_inflight_per_client: int = Field(128, ge=1, description="Most `generate` calls in flight per client.")
    max_batch_items: int = Field(10_000, ge=1, description="Most items one `batch` call may hold.")
    max_embed_texts: int = Field(256, ge=1, description="Most texts one `embed` call may hold.")
    max_input_chars: int = Field(
        4_000_000,
        ge=1000,
        description="Longest input in characters: a prompt or chat, a batch's items together, `embed`'s texts "
        "together, `summarize_large`'s text, `train_adapter`'s examples together.",
    )
    max_result_chars: int = Field(
        60_000, ge=1000, description="Larger tool results become a summary and a link to paged results."
    )
    max_sampling_calls: int = Field(20, ge=1, le=200, description="Most sampling requests one tool call may make.")
    benchmark_budget_s: float = Field(
        900.0, ge=10, description="Longest a `benchmark` or `tune_serving` call may run (refused with the estimate)."
    )
    quota_prompt_tokens_per_minute: int | None = Field(None, ge=0, description=QUOTA + "prompt tokens per minute.")
    quota_output_tokens_per_minute: int | None = Field(None, ge=0, description=QUOTA + "output tokens per minute.")
    quota_prompt_tokens_per_day: int | None = Field(None, ge=0, description=QUOTA + "prompt tokens per UTC day.")
    quota_output_tokens_per_day: int | None = Field(None, ge=0, description=QUOTA + "output tokens per UTC day.")
    quota_concurrent_jobs: int | None = Field(None, ge=0, description=QUOTA + "open batch jobs at once.")
    quota_queued_items: int | None = Field(None, ge=0, description=QUOTA + "batch items waiting in open jobs.")
    quota_training_runs_per_day: int | None = Field(None, ge=0, description=QUOTA + "train_adapter runs per day.")
    quota_file: Path | None = Field(
        None, description="TOML quotas: `[roles.<role>]` and `[clients.<name>]` tables of the quota_* names."
    )

    @field_validator("quota_file")
    @classmethod
    def _quota_file_reads(cls, path: Path | None) -> Path | None:
        load_quota_file(path)  # a bad file stops the start here, named
        return path
