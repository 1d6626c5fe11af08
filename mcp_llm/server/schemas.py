"""The server layer's pydantic models: the MCP tools' results and arguments (benchmark, adapters, models,
tuning, the swap confirmation) and the dashboard's data. Core models they embed live in `mcp_llm.core.schemas`,
those shared with the engine and below in `mcp_llm.schemas`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from mcp_llm.core.schemas import AdapterInfo, LevelRow, ModelInfo, Workload
from mcp_llm.schemas import ChatMessage, EngineConfig, JobStatus, Timing, Usage

SAMPLE_S = 2.0  # the dashboard: one history point every 2 s ...
Goal = Literal["throughput", "latency"]


class ChatResult(BaseModel):
    """The `chat` tool's result: the answer to one turn of a kept conversation."""

    conversation_id: str = Field(description="Pass it to the next `chat` call; conversations://{id} shows the thread.")
    turn: int = Field(description="The answer's turn number in the conversation (0 = the first turn).")
    text: str
    finish_reason: str | None
    usage: Usage = Field(description="This turn's tokens; cached_tokens: the earlier turns served from the cache.")
    timing: Timing
    dropped_turns: int = Field(0, description="Oldest turns left out of this request to fit the context.")
    notes: list[str] = Field(default_factory=list)
    reasoning: str | None = Field(None, description="The model's reasoning (include_reasoning, --reasoning-parser).")


class Forked(BaseModel):
    conversation_id: str = Field(description="The new conversation.")
    forked_from: str
    turns: int = Field(description="Turns copied into it.")


class SwapConfirmation(BaseModel):
    """What the user is asked before a hot swap."""

    proceed: bool = Field(description="Swap the serving model now")


class BenchmarkResult(BaseModel):
    """A stored benchmark run: one row per variant and concurrency level."""

    benchmark_id: str
    uri: str = Field(description="benchmarks://{id}: the stored run (its chart at benchmarks://{id}/chart).")
    title: str
    workload: Workload
    levels: list[int]
    rows: list[LevelRow]
    failed_variants: dict[str, str] = Field(description="Variants that did not start, with vLLM's reason.")
    estimate_s: float = Field(description="The duration estimated before the run.")
    elapsed_s: float
    swaps: int = Field(description="Engine swaps made (variants and the rollback).")
    serving: str = Field(description="The model serving after the run (the original: variants are rolled back).")


class Comparison(BaseModel):
    benchmark_ids: list[str]
    rows: list[LevelRow]


class AdapterList(BaseModel):
    adapters: list[AdapterInfo]
    lora_enabled: bool = Field(description="Whether the engine applies adapters (--enable-lora).")


class Example(BaseModel):
    """One training example: a prompt (or a chat) and the completion the adapter should give."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    completion: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_input(self) -> Example:
        if (self.prompt is None) == (self.messages is None) or self.prompt == "":
            raise ValueError("give exactly one of `prompt` (non-empty) or `messages`")
        return self


class TrainResult(BaseModel):
    adapter: AdapterInfo
    loss_curve: list[float]
    train_seconds: float
    adapter_bytes: int
    held_out: list[dict] = Field(description="Held-out inputs with the base model's and the adapter's answers.")


class ModelList(BaseModel):
    models: list[ModelInfo]
    serving: str = Field(description="The model the engine serves now.")


class LoadResult(BaseModel):
    """The `load_model` result: what serves now and how the swap went."""

    model: ModelInfo
    previous: str = Field(description="The model served before the swap.")
    swap_seconds: float = Field(description="Drain, stop, start: the time new requests waited.")
    config: EngineConfig


class Trial(BaseModel):
    """One measured (or refused) variant of the tuning trace."""

    thought: str | None = None
    variant: dict[str, Any] = Field(description="The settings tried ({} is the engine as it serves).")
    row: LevelRow | None = None
    error: str | None = None
    seconds: float = 0.0
    score: float | None = Field(None, description="Output tok/s (throughput) or -p95 e2e ms (latency).")


class TuneResult(BaseModel):
    benchmark_id: str
    uri: str
    goal: Goal
    concurrency: int
    trials: list[Trial]
    stopped: str = Field(description="stop (the reasoner), budget, max_variants, or malformed (unusable replies).")
    best: dict[str, Any] = Field(description="The best variant's settings ({}: keep the engine as it is).")
    flags: str = Field(description="The best settings as server flags.")
    applied: bool = Field(description="Whether the engine now serves the best variant (apply=true).")
    reasoner: str
    sampling_calls: int
    spent_s: float


class HistoryPoint(BaseModel):
    """The sliding-window figures of `metrics://engine` at one moment."""

    t: float = Field(description="Unix time.")
    requests_per_s: float
    output_tokens_per_s: float
    latency_ms: dict[str, dict[str, float | None]] = Field(description="ttft/tpot/e2e: p50, p95, p99.")
    running: int
    waiting: int
    kv_cache_usage: float


class Entry(BaseModel):
    """A model or adapter, as the dashboard lists it."""

    name: str
    detail: str
    serving: bool = False


class DashboardData(BaseModel):
    """Everything the page shows, read at one moment."""

    at: float = Field(description="Unix time of this reading.")
    model: str
    backend: str
    state: str
    metrics: dict[str, Any] = Field(description="The metrics://engine document at this moment.")
    max_num_seqs: int | None = None
    history: list[HistoryPoint] = Field(description=f"One point every {SAMPLE_S:g} s, oldest first.")
    jobs: list[JobStatus] = Field(description="Queued and running jobs, then the latest others.")
    models: list[Entry]
    adapters: list[Entry]
    lora_enabled: bool
    usage: list[Entry] | None = Field(None, description="Admins: each client's usage over the last 24 hours.")
