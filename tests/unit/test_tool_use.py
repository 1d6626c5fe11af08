"""Tool use as pure logic: tool specs and tool_choice checked, the constraint for required/named calls, calls
checked against their tools' schemas; and the confidence summary of token log-probabilities."""

from __future__ import annotations

import math
import re

import pytest

from mcp_llm.core.tool_use import tool_use
from mcp_llm.errors import InputError
from mcp_llm.schemas import Confidence, SamplingOptions

pytestmark = pytest.mark.anyio
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    },
}
PING = {"type": "function", "function": {"name": "ping"}}


async def test_required_constrains_to_a_list_of_calls_of_the_given_tools() -> None:
    use = await tool_use([ADD, PING], "required", None)
    schema = use.constrain(SamplingOptions()).json_schema
    assert schema["type"] == "array" and schema["minItems"] == 1
    assert [c["properties"]["name"]["const"] for c in schema["items"]["anyOf"]] == ["add", "ping"]
    calls, text = use.calls([{"name": "add", "parameters": {"a": 2}}, {"name": "ping", "parameters": {}}], "[...]")
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 2}), ("ping", {})] and text == ""
    assert len({c.id for c in calls}) == 2


async def test_a_named_tool_constrains_to_its_arguments() -> None:
    use = await tool_use([ADD], {"type": "function", "function": {"name": "add"}}, None)
    assert use.constrain(SamplingOptions()).json_schema == ADD["function"]["parameters"]
    (call,) = use.calls({"a": 1}, '{"a": 1}')[0]
    assert call.name == "add"


async def test_auto_reads_the_parsers_calls_and_checks_them() -> None:
    use = await tool_use([ADD], "auto", "hermes")
    assert use.constrain(SamplingOptions()).json_schema is None
    calls, text = use.calls(None, "before", [{"id": "x1", "name": "add", "arguments": {"a": 3}}])
    assert calls[0].id == "x1" and text == "before"
    with pytest.raises(InputError, match="does not satisfy its parameters schema"):
        use.calls(None, "", [{"name": "add", "arguments": {"a": "three"}}])
    with pytest.raises(InputError, match="not one of the tools given"):
        use.calls(None, "", [{"name": "mul", "arguments": {}}])


@pytest.mark.parametrize(
    ("tools", "choice", "parser", "says"),
    [
        ([ADD], "auto", None, "--tool-call-parser"),
        ([ADD], "ad", None, "Did you mean 'add'"),
        (None, "required", None, "needs `tools`"),
        ([ADD, ADD], "none", None, "unique"),
        ([{"type": "function", "function": {"name": "a b"}}], "none", None, "letters, digits"),
        ([{"function": {"name": "f"}, "extra": 1}], "none", None, "tools[0] is not a tool"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"$ref": "http://x/y"}}}], "f", None, "$ref"),
        ([ADD], {"type": "function"}, None, "as an object"),
    ],
)
async def test_bad_tools_and_choices_say_what_to_fix(tools, choice, parser, says) -> None:
    with pytest.raises(InputError, match=re.escape(says)):
        await tool_use(tools, choice, parser)


async def test_a_constrained_call_refuses_another_structured_mode() -> None:
    use = await tool_use([ADD], "required", None)
    with pytest.raises(InputError, match="leave out json_schema"):
        use.constrain(SamplingOptions(regex="a+"))


def test_one_structured_mode_at_most() -> None:
    with pytest.raises(ValueError, match="choice and grammar"):
        SamplingOptions(choice=["a"], grammar="root ::= 'a'")


def test_confidence_summarises_token_logprobs() -> None:
    summary = Confidence.of([math.log(0.5), math.log(0.25)])
    assert summary.mean_prob == pytest.approx(0.375) and summary.min_prob == pytest.approx(0.25)
    assert summary.perplexity == pytest.approx(math.exp(-(math.log(0.5) + math.log(0.25)) / 2))
    assert Confidence.of([]) is None
