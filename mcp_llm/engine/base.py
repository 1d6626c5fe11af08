"""The engine interface handlers and jobs see. Backends: in-process vLLM (`local`), later remote."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from mcp_llm.errors import InputError
from mcp_llm.schemas import ChatMessage, Completion, EngineConfig, SamplingOptions, TokenLogprob

# What a session-routing router in front of a remote vLLM keeps on one replica: a batch job's id, else the client.
routing_key: ContextVar[str | None] = ContextVar("routing_key", default=None)


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter a request runs with: its registered name and folder."""

    name: str
    path: str


@dataclass
class Phase:
    """What a starting engine is doing now, in words ("importing vLLM", "loading weights", ...), so that calls
    waiting for it can tell their callers (keep-alive progress); empty when nothing is known."""

    text: str = ""

    def set(self, text: str) -> None:
        self.text = text


class EngineState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass
class EngineStats:
    """The engine's scheduler state as of its last step (prefix-cache counts are lifetime totals)."""

    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0
    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0
    spec_drafts: int = 0  # speculative decoding, lifetime: draft rounds, tokens proposed, tokens accepted
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        return self.prefix_cache_hits / self.prefix_cache_queries if self.prefix_cache_queries else None

    def speculative(self) -> dict[str, float | int] | None:
        """Acceptance of speculative decoding, and tokens per verification step (its speed-up bound)."""
        if not self.spec_drafts:
            return None
        return {
            "draft_tokens": self.spec_draft_tokens,
            "accepted_tokens": self.spec_accepted_tokens,
            "acceptance_rate": self.spec_accepted_tokens / max(1, self.spec_draft_tokens),
            "tokens_per_step": 1 + self.spec_accepted_tokens / self.spec_drafts,
        }


class EngineBackend(Protocol):
    """One serving engine, shared by every client and tool."""

    state: EngineState
    backend: str  # "local": in-process vLLM; "openai": a remote vLLM server

    @property
    def model_name(self) -> str: ...

    @property
    def max_model_len(self) -> int: ...

    def config(self) -> EngineConfig:
        """The effective configuration, as reported by the engine itself."""
        ...

    def tokenize_text(self, text: str) -> list[int]:
        """Token ids of a raw prompt, as the engine would tokenize it."""
        ...

    def tokenize_chat(self, messages: list[ChatMessage], tools: list[dict] | None = None) -> list[int]:
        """Token ids of a chat, the model's chat template applied with a generation prompt (and `tools`, in
        OpenAI's shape, for templates that show the model its tools)."""
        ...

    def tokenize_many(
        self, inputs: list[str | list[ChatMessage]], tools: list[dict] | None = None
    ) -> list[list[int] | InputError]:
        """Token ids of many raw prompts and chats at once, each as tokenize_text or tokenize_chat gives it; a chat
        the template rejects gets its InputError in its place."""
        ...

    def tool_calls_in(self, parser_name: str, text: str, tools: list[dict]) -> tuple[list[dict], str]:
        """The calls in a completion's text, by vLLM's tool-call parser `parser_name`, and the text around them."""
        ...

    def reasoning_in(self, parser_name: str, text: str) -> tuple[str | None, str]:
        """A completion's reasoning and answer, split by vLLM's reasoning parser `parser_name`."""
        ...

    def detokenize(self, token_ids: list[int]) -> str: ...

    async def generate(
        self,
        token_ids: list[int],
        options: SamplingOptions,
        request_id: str,
        adapter: Adapter | None = None,
        cache_salt: str | None = None,
        priority: int = 0,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """Run one request to completion (with a LoRA adapter if given; its prefix-cache entries salted with
        `cache_salt`, so only requests with the same salt share them; scheduled by `priority`, lower first, under
        vLLM's priority policy; with `on_text`, streamed: it hears the first sample's text so far as it grows);
        cancelling the caller aborts it."""
        ...

    async def prompt_logprobs(self, token_ids: list[int], request_id: str) -> list[float]:
        """Log-probability of each prompt token after the first, given those before it (for perplexity)."""
        ...

    def kernels(self) -> dict[str, str]:
        """The linear kernel the engine chose per quantization scheme (empty when unknown or unquantized)."""
        ...

    def num_unfinished_requests(self) -> int: ...

    def stats(self) -> EngineStats:
        """Running/waiting requests, KV-cache use and prefix-cache counts, from the engine's scheduler."""
        ...

    async def shutdown(self, drain_timeout_s: float) -> None:
        """Stop admitting, let in-flight requests finish for up to the timeout, abort the rest, stop."""
        ...


class Tokenizing:
    """Tokens from the served model's own (vLLM-loaded) tokenizer in `self._tokenizer`: shared by the backends,
    so a prompt counts the same whether the engine is in this process or remote."""

    _tokenizer: Any

    def tokenize_text(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text))

    def tokenize_chat(self, messages: list[ChatMessage], tools: list[dict] | None = None) -> list[int]:
        return list(self._tokenizer.encode(self._rendered(messages, tools), add_special_tokens=False))

    def tokenize_many(
        self, inputs: list[str | list[ChatMessage]], tools: list[dict] | None = None
    ) -> list[list[int] | InputError]:
        """The chat templates rendered here, then every text encoded in one batch call of the Rust tokenizer (it
        spreads them over the cores, without the GIL): a batch job's next items in a fraction of the time one by
        one takes. Raw prompts get the tokenizer's special tokens (BOS), rendered chats have theirs already."""
        out: list[list[int] | InputError] = [[] for _ in inputs]
        raw: list[tuple[int, str]] = []
        chats: list[tuple[int, str]] = []
        for i, value in enumerate(inputs):
            if isinstance(value, str):
                raw.append((i, value))
                continue
            try:
                chats.append((i, self._rendered(value, tools)))
            except InputError as exc:
                out[i] = exc
        for group, special in ((raw, True), (chats, False)):
            for (i, _), ids in zip(group, self._encoded([text for _, text in group], special), strict=True):
                out[i] = ids
        return out

    def _rendered(self, messages: list[ChatMessage], tools: list[dict] | None) -> str:
        turns = [m.template_dict() for m in messages]
        extra = {"tools": tools} if tools else {}
        try:
            return self._tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True, **extra)
        except Exception as exc:  # jinja raises on turn orders or roles a template does not allow
            raise InputError(f"The model's chat template rejected these messages: {exc}") from exc

    def _encoded(self, texts: list[str], special: bool) -> list[list[int]]:
        if not texts:
            return []
        backend = getattr(self._tokenizer, "backend_tokenizer", None)  # a fast (Rust) tokenizer
        if backend is None:
            return [list(self._tokenizer.encode(text, add_special_tokens=special)) for text in texts]
        return [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=special)]

    def detokenize(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids)


def output_budget(prompt_tokens: int, max_model_len: int, max_tokens: int) -> int:
    """Tokens the request may generate: its max_tokens, cut to what the context leaves.

    Raises InputError when the prompt alone leaves no room, naming both counts.
    """
    room = max_model_len - prompt_tokens
    if room < 1:
        raise InputError(
            f"The prompt has {prompt_tokens} tokens but the model's context is {max_model_len} tokens "
            f"(at least 1 must remain for output): shorten the prompt by {prompt_tokens - max_model_len + 1} "
            "tokens or more, or start the server with a larger --max-model-len."
        )
    return min(max_tokens, room)


ENGINE_SERIES = "_vllm_series"  # the attribute of an engine's EngineStats holding its vllm:* registry


def token_logprob(token_id: int, at: dict[int, Any], top: int = 0) -> TokenLogprob:
    """A position's sampled token (`token_id`) and, with `top`, its most likely alternatives (by vLLM's rank),
    from vLLM's `{token id: Logprob}` at that position (in-process, or rebuilt from a remote server's JSON)."""
    chosen = at[token_id]
    ranked = sorted(at.items(), key=lambda item: item[1].rank or 0)[:top] if top else None
    alternatives = [TokenLogprob(token=lp.decoded_token or "", logprob=lp.logprob) for _, lp in ranked or ()]
    return TokenLogprob(token=chosen.decoded_token or "", logprob=chosen.logprob, top=alternatives or None)


def bind_engine_series(stats: EngineStats, registry: Any) -> None:
    """Record that `registry` (a prometheus_client CollectorRegistry) holds the vllm:* series of the engine whose
    scheduler stats `stats` are; core.metrics exports it."""
    setattr(stats, ENGINE_SERIES, registry)


def engine_series(stats: EngineStats) -> Any:
    """The vllm:* CollectorRegistry of the engine behind `stats` (None: a remote engine, or none bound)."""
    return getattr(stats, ENGINE_SERIES, None)
