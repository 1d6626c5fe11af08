"""The core layer's pydantic models: registry entries (models, adapters), the quantize report, load-test
workloads and rows, engine variants. Models shared with the engine and below live in `mcp_llm.schemas`; the
other MCP tools' results and arguments in `mcp_llm.server.schemas`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_llm.settings import NGRAM

SPEED_TOKENS = 64  # quantize's tokens/s run: every prompt generates exactly this many (ignore_eos)


class ModelInfo(BaseModel):
    """One registered model (resource models://{name}, list_models)."""

    name: str
    path: str
    base_model: str | None = Field(None, description="The model it was made from (null for a base model).")
    scheme: str | None = Field(None, description="Quantization scheme (null: not quantized).")
    strategy: str | None = Field(None, description="How weights were grouped, e.g. 'group 64' or 'channel'.")
    disk_bytes: int | None = Field(None, description="Size of the checkpoint folder on disk.")
    param_bytes: int | None = Field(None, description="Bytes of the stored tensors (weights, scales, zero points).")
    perplexity: float | None = Field(None, description="On the held-out text in resources/eval.")
    tokens_per_s: float | None = Field(None, description="Output tokens/s on the report's prompts.")
    kernels: dict[str, str] = Field(default_factory=dict, description="vLLM's linear kernel per scheme.")
    created_at: float
    serving: bool = Field(False, description="Whether the engine serves it now.")
    report: dict[str, Any] | None = Field(None, description="The quantize report, for quantized models.")


class AdapterInfo(BaseModel):
    """One registered adapter (list_adapters, adapters://{name})."""

    name: str
    path: str
    base_model: str
    rank: int
    target_modules: list[str]
    source: str = Field(description="trained, merged or imported.")
    created_at: float
    figures: dict[str, Any] = Field(default_factory=dict, description="Training or merge figures.")
    owner: str | None = Field(None, description="The client that trained, merged or imported it.")
    shared: bool = Field(False, description="Usable by every client (an admin shared it), not only its owner.")


class Measurement(BaseModel):
    """One checkpoint measured on the real engine."""

    perplexity: float = Field(description="exp(mean negative log-likelihood) over the held-out text.")
    eval_tokens: int = Field(description="Tokens scored for perplexity.")
    tokens_per_s: float = Field(description=f"Output tokens/s, the prompts at once, {SPEED_TOKENS} tokens each.")
    outputs: list[str] = Field(description="Greedy answers to the report's prompts.")
    kernels: dict[str, str] = Field(default_factory=dict, description="vLLM's linear kernel per scheme.")


class SideBySide(BaseModel):
    prompt: str
    before: str
    after: str | None = Field(description="Null when this machine's vLLM cannot serve the checkpoint.")


class QuantizeReport(BaseModel):
    """What quantizing cost and saved, measured here on the real engine."""

    name: str = Field(description="The new model's registered name (load it with load_model).")
    base_model: str
    scheme: str
    strategy: str = Field(description="How weights were grouped: the preset, 'group N' or 'channel'.")
    path: str
    quantize_seconds: float = Field(description="Time llm-compressor took in the worker.")
    disk_bytes_before: int
    disk_bytes_after: int
    param_bytes_before: int
    param_bytes_after: int
    size_ratio: float = Field(description="disk_bytes_after / disk_bytes_before.")
    servable_here: bool = Field(description="Whether this machine's vLLM serves the checkpoint (else: see notes).")
    perplexity_before: float
    perplexity_after: float | None
    perplexity_change_pct: float | None
    eval_tokens: int
    tokens_per_s_before: float
    tokens_per_s_after: float | None
    kernels: dict[str, str] = Field(description="Which vLLM kernel ran each quantized scheme.")
    outputs: list[SideBySide]
    notes: list[str] = Field(default_factory=list)


class LengthRange(BaseModel):
    """Token counts drawn uniformly from [min, max]."""

    model_config = ConfigDict(extra="forbid")
    min: int = Field(ge=1, le=32768)
    max: int = Field(ge=1, le=32768)

    @model_validator(mode="after")
    def _ordered(self) -> LengthRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self

    @property
    def mean(self) -> float:
        return (self.min + self.max) / 2


class Workload(BaseModel):
    """What to send: synthetic prompts of given lengths (with an optional shared prefix), your prompts, or a
    replay of the request log; each concurrency level (and each variant) sends `requests` of them."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["synthetic", "prompts", "replay"] = Field(
        "synthetic", description="synthetic: generated prompts; prompts: `prompts` cycled; replay: the request log."
    )
    requests: int = Field(32, ge=1, le=10_000, description="Requests per concurrency level and variant.")
    prompt_tokens: LengthRange = Field(
        default_factory=lambda: LengthRange(min=64, max=128), description="Synthetic prompt lengths in tokens."
    )
    output_tokens: LengthRange = Field(
        default_factory=lambda: LengthRange(min=32, max=64),
        description="Output lengths in tokens (ignore_eos makes them exact); replay uses the logged lengths.",
    )
    shared_prefix_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of each synthetic prompt that is the same system prefix (0-1)."
    )
    prompts: list[str] | None = Field(None, description="Your prompts (kind=prompts), sent as raw text.")
    tenants: int = Field(
        1, ge=1, le=64, description="Requests spread over this many tenants (separate prefix caches in HTTP mode)."
    )
    ignore_eos: bool = Field(True, description="Generate exactly the drawn output length.")
    seed: int = Field(0, description="Seed for lengths and synthetic text.")

    @model_validator(mode="after")
    def _prompts_match_kind(self) -> Workload:
        if self.kind == "prompts" and not self.prompts:
            raise ValueError("kind=prompts needs a non-empty `prompts` list")
        if self.kind != "prompts" and self.prompts:
            raise ValueError("`prompts` is only used with kind=prompts")
        return self


class LevelRow(BaseModel):
    """One variant at one concurrency level."""

    variant: str
    concurrency: int
    requests: int
    completed: int
    failed: int
    wall_s: float
    requests_per_s: float
    output_tokens_per_s: float
    ttft_ms: dict[str, float | None]
    tpot_ms: dict[str, float | None]
    e2e_ms: dict[str, float | None]


class Variant(BaseModel):
    """Engine settings to compare (vLLM's names); fields left out keep the serving engine's values."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=60, description="A label for tables and charts.")
    model: str | None = Field(None, description="A registered model (list_models), e.g. a quantized checkpoint.")
    max_num_seqs: int | None = Field(None, ge=1, le=1024, description="Most sequences in one engine step.")
    max_num_batched_tokens: int | None = Field(None, ge=16, le=1 << 20, description="Token budget of one step.")
    enable_prefix_caching: bool | None = Field(None, description="Reuse KV cache across shared prefixes.")
    speculative: Literal["ngram", "off"] | None = Field(
        None, description="ngram: prompt-lookup speculative decoding; off: none."
    )
    enforce_eager: bool | None = Field(None, description="Skip graph compilation (faster start).")

    def label(self) -> str:
        if self.name:
            return self.name
        fields = self.model_dump(exclude_none=True, exclude={"name"})
        return ", ".join(f"{k}={v}" for k, v in fields.items()) or "current"

    def is_current(self) -> bool:
        return not self.model_dump(exclude_none=True, exclude={"name"})

    def overrides(self) -> dict[str, Any]:
        """The engine arguments this variant changes (speculative -> speculative_config)."""
        fields = self.model_dump(exclude_none=True, exclude={"name", "model", "speculative"})
        if self.speculative == "ngram":
            fields["speculative_config"] = dict(NGRAM)
        elif self.speculative == "off":
            fields["speculative_config"] = None
        return fields


class UsageBucket(BaseModel):
    """What one client used in one hour or day (UTC)."""

    client: str
    start: float = Field(description="Unix time the bucket starts.")
    requests: int
    errors: int
    prompt_tokens: int
    output_tokens: int


class UsageReport(BaseModel):
    """Usage over a period, per client and bucket, with totals and the quota state of each client shown."""

    since: float = Field(description="Unix time the period starts.")
    bucket: Literal["hour", "day"]
    totals: dict[str, dict[str, int]] = Field(description="Per client: requests, errors, prompt and output tokens.")
    buckets: list[UsageBucket]
    quotas: dict[str, dict[str, dict]] = Field(
        default_factory=dict, description="Per client: each set quota's used, limit and resets_at (unix time)."
    )
