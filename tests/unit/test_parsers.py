"""vLLM's own tool-call and reasoning parsers on the default model's real tokenizer (no engine): a Hermes call is
read with its arguments, plain text is left alone, think tags split even where the tokenizer lacks them as
single tokens, and an unknown parser name lists vLLM's."""

from __future__ import annotations

import pytest

from mcp_llm import default_model
from mcp_llm.engine.parsers import Parsing
from mcp_llm.errors import InputError
from tests.conftest import MODELS_DIR

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def parsing() -> Parsing:
    from transformers import AutoTokenizer

    found = Parsing()
    found._tokenizer = AutoTokenizer.from_pretrained(default_model.ensure_prepared(MODELS_DIR))
    return found


def test_a_hermes_call_is_read_and_plain_text_left_alone(parsing: Parsing) -> None:
    text = 'Let me look. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    calls, rest = parsing.tool_calls_in("hermes", text, [WEATHER])
    assert [(c["name"], c["arguments"]) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert rest.strip() == "Let me look." and calls[0]["id"]
    assert parsing.tool_calls_in("hermes", "It is sunny.", [WEATHER]) == ([], "It is sunny.")


def test_think_tags_split_with_a_tokenizer_that_lacks_them(parsing: Parsing) -> None:
    assert "<think>" not in parsing._tokenizer.get_vocab()
    assert parsing.reasoning_in("deepseek_r1", "<think>2 and 3 make 5.</think>It is 5.") == (
        "2 and 3 make 5.",
        "It is 5.",
    )


def test_unknown_parsers_name_vllms(parsing: Parsing) -> None:
    with pytest.raises(InputError, match=r"not one of vLLM's.*hermes"):
        parsing.tool_calls_in("hermez", "x", [WEATHER])
    with pytest.raises(InputError, match=r"not one of vLLM's.*deepseek_r1"):
        parsing.reasoning_in("deepseek", "x")
