"""From a finished completion to the answer an agent reads: the reasoning split off (`--reasoning-parser`),
the structured output parsed, tool calls read and checked, and with `n` samples the one to return picked."""

from __future__ import annotations

from typing import Any, Literal

from jsonschema.protocols import Validator

from mcp_llm.core.inference import parse_structured
from mcp_llm.core.tool_use import ToolUse
from mcp_llm.engine.base import EngineBackend
from mcp_llm.errors import InputError
from mcp_llm.schemas import Completion, SamplingOptions, ToolCall

Pick = Literal["first", "most_confident"]


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
