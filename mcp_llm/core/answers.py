"""From a finished completion to the answer an agent reads: the reasoning split off (`--reasoning-parser`),
the structured output parsed, tool calls read and checked, and with `n` samples the one to return picked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from jsonschema.protocols import Validator

from mcp_llm.core.inference import parse_structured, structured_validator
from mcp_llm.core.tool_use import ToolUse, tool_use
from mcp_llm.engine.base import EngineBackend
from mcp_llm.errors import InputError
from mcp_llm.schemas import Completion, SamplingOptions, ToolCall
from mcp_llm.settings import Settings

Pick = Literal["first", "most_confident"]


@dataclass
class Answer:
    """One request's answer: the completion (its text without reasoning or calls), the structured output parsed,
    the tool calls checked, the reasoning (when asked for)."""

    completion: Completion
    parsed: Any = None
    tool_calls: list[ToolCall] | None = None
    reasoning: str | None = None


@dataclass
class Answering:
    """How the requests of one `generate` call, or of every item of one `batch` job, are asked and answered: the
    sampling sent to the engine (constrained for tool calls, with logprobs for picking), the tools the chat template
    shows, and how a finished completion becomes the `Answer`."""

    sampling: SamplingOptions
    validator: Validator | None
    tools: ToolUse | None
    pick: Pick
    reasoning_parser: str | None
    include_reasoning: bool

    @property
    def templated_tools(self) -> list[dict] | None:
        return self.tools.templated if self.tools else None

    async def finish(self, engine: EngineBackend, completion: Completion) -> Answer:
        """The answer of a finished completion; InputError when the output breaks its schema or a tool's."""
        completion, reasoning = split_reasoning(engine, self.reasoning_parser, picked(completion, self.pick))
        completion, parsed, calls = await answer(engine, completion, self.sampling, self.validator, self.tools)
        return Answer(completion, parsed, calls, reasoning if self.include_reasoning else None)


def server_parsers(settings: Settings) -> dict[str, str | None]:
    """The server's tool-call and reasoning parsers by name, as `answering` takes them."""
    return {"tool_call_parser": settings.tool_call_parser, "reasoning_parser": settings.reasoning_parser}


async def answering(
    sampling: SamplingOptions,
    tools: list[dict] | None = None,
    tool_choice: str | dict | None = None,
    pick: Pick = "first",
    include_reasoning: bool = False,
    *,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
) -> Answering:
    """Check a request's answering options before any token is spent (tools and schemas: no remote references,
    size caps, compiled off the event loop); says what to fix."""
    use = await tool_use(tools, tool_choice, tool_call_parser)
    sampling = for_picking(use.constrain(sampling) if use else sampling, pick)
    validator = await structured_validator(sampling.json_schema)
    return Answering(sampling, validator, use, pick, reasoning_parser, include_reasoning)


def for_picking(sampling: SamplingOptions, pick: Pick) -> SamplingOptions:
    """`most_confident` compares the samples' mean log-probabilities: ask the engine for them (cheaply, no
    alternatives) when the caller did not; with one sample there is nothing to pick."""
    if pick == "first":
        return sampling
    if sampling.n < 2:
        raise InputError("pick `most_confident` chooses among samples: give n of 2 or more.")
    return sampling if sampling.logprobs is not None else sampling.model_copy(update={"logprobs": 0})


def picked(completion: Completion, pick: Pick) -> Completion:
    """The completion with `text` (and its figures) from the sample `pick` names; `samples` keeps them all."""
    if pick == "first" or not completion.samples:
        return completion
    best = max(completion.samples, key=lambda s: s.confidence.mean_logprob if s.confidence else float("-inf"))
    fields = {"text": best.text, "finish_reason": best.finish_reason, "confidence": best.confidence}
    return completion.model_copy(update=fields | {"logprobs": best.logprobs})


def split_reasoning(engine: EngineBackend, parser: str | None, completion: Completion) -> tuple[Completion, str | None]:
    """The completion with only the answer in `text` (and in each sample's), and the reasoning of `text` split
    off; both unchanged without a reasoning parser. Each distinct text is parsed once: with `n` > 1, `text` is one
    of the samples' (pick before splitting, so the reasoning is that of the sample picked)."""
    if parser is None:
        return completion, None
    texts = dict.fromkeys([completion.text, *(s.text for s in completion.samples or ())])
    split = {text: engine.reasoning_in(parser, text) for text in texts}
    reasoning, text = split[completion.text]
    samples = [s.model_copy(update={"text": split[s.text][1]}) for s in completion.samples or ()]
    return completion.model_copy(update={"text": text, "samples": samples or None}), reasoning


async def answer(
    engine: EngineBackend,
    completion: Completion,
    sampling: SamplingOptions,
    validator: Validator | None,
    tools: ToolUse | None,
) -> tuple[Completion, Any, list[ToolCall] | None]:
    """The completion (its text what is left around tool calls), the structured output parsed (None when it was
    a tool call), and the tool calls checked against their tools (None without tools)."""
    parsed = await parse_structured(completion, sampling.json_schema, validator)
    if tools is None or tools.choice == "none":
        return completion, parsed, None
    found, text = None, completion.text
    if tools.choice == "auto":
        assert tools.parser is not None
        found, text = engine.tool_calls_in(tools.parser, completion.text, tools.templated)
    calls, text = tools.calls(parsed, text, found)
    if tools.choice != "auto":
        parsed = None  # the JSON was the call, not an answer of the caller's schema
    finish = "tool_calls" if calls else completion.finish_reason
    return completion.model_copy(update={"text": text, "finish_reason": finish}), parsed, calls or None
