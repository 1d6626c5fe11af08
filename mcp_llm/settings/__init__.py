"""Settings: env vars `MCP_LLM_*` and CLI flags, named after vLLM's EngineArgs where one exists.

One flat set of names (`--max-model-len`, `MCP_LLM_MAX_MODEL_LEN`), defined in groups, one module each: engine,
remote, http, auth, limits, jobs, storage, lab. Engine fields left at None take vLLM's own default;
`engine_args()` passes on only what is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcp_llm.settings.auth import AuthSettings
from mcp_llm.settings.engine import DRAFT_TOKENS, ENGINE_FIELDS, LORA_FIELDS, NGRAM, PARALLEL_FIELDS, EngineSettings
from mcp_llm.settings.http import HttpSettings
from mcp_llm.settings.jobs import JobSettings
from mcp_llm.settings.lab import LabSettings
from mcp_llm.settings.limits import LimitSettings
from mcp_llm.settings.remote import RemoteSettings
from mcp_llm.settings.storage import StorageSettings

__all__ = [
    "DRAFT_TOKENS",
    "ENGINE_FIELDS",
    "GROUPS",
    "LORA_FIELDS",
    "NGRAM",
    "PARALLEL_FIELDS",
    "Settings",
    "load_settings",
]

GROUPS = {
    "engine": EngineSettings,
    "remote": RemoteSettings,
    "http": HttpSettings,
    "auth": AuthSettings,
    "limits": LimitSettings,
    "jobs": JobSettings,
    "storage": StorageSettings,
    "lab": LabSettings,
}


class Settings(  # bases in reverse: pydantic lists the last base's fields first, so `--help` starts with the engine
    BaseSettings,
    LabSettings,
    StorageSettings,
    JobSettings,
    LimitSettings,
    AuthSettings,
    HttpSettings,
    RemoteSettings,
    EngineSettings,
):
    """Everything the server can be told at start. Invalid values stop the start with the field's name."""

    model_config = SettingsConfigDict(env_prefix="MCP_LLM_", extra="forbid", validate_default=True)

    @field_validator("model", "tokenizer", "served_model_name", "quantization", "embedding_model", "base_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @property
    def model_store(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def database(self) -> Path:
        return self.data_dir / "mcp-llm.db"

    @property
    def engine_log(self) -> Path:
        """Where vLLM's log of the serving engine is copied (its kernels are read there)."""
        return self.data_dir / "logs" / "engine.log"

    @property
    def prioritized(self) -> bool:
        """Whether requests carry a scheduler priority: the in-process engine runs the priority policy unless told
        otherwise; a remote server only when `scheduling_policy` says so explicitly (vLLM's own default is fcfs,
        which refuses a priority)."""
        if self.scheduling_policy != "priority":
            return False
        return self.backend == "local" or "scheduling_policy" in self.model_fields_set

    def engine_args(self, model_path: str) -> dict[str, Any]:
        """The vLLM engine arguments that are set, with the model resolved to `model_path`."""
        args = {name: getattr(self, name) for name in ENGINE_FIELDS if getattr(self, name) is not None}
        args["model"] = model_path
        return args


def load_settings(argv: list[str] | None = None) -> Settings:
    """Settings from env vars, overridden by CLI flags (`--max-model-len 4096`, `--enforce-eager`)."""
    return Settings(
        _cli_parse_args=argv if argv is not None else False,
        _cli_kebab_case=True,
        _cli_implicit_flags=True,
        _cli_prog_name="mcp-llm",
        _cli_exit_on_error=True,
    )
