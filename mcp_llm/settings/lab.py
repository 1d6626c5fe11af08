"""The lab: worker venv for quantize and adapters, sampling flows."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from pathlib import Path

from pydantic import BaseModel, Field


class LabSettings(BaseModel):
    """The lab: worker venv for quantize and adapters, sampling flows."""

    worker_python: Path | None = Field(
        None,
        description="Python of the worker venv (llm-compressor, peft) for quantize and adapters (default: "
        "`.venv-worker/bin/python` in the checkout, made by `make setup`; an installed wheel has none: set this).",
    )
    worker_timeout_s: float = Field(1800.0, gt=0, description="Longest a quantize worker may run before it is stopped.")
    sampling_fallback: bool = Field(False, description="When a client cannot sample, let our engine reason.")
