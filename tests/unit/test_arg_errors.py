"""Tool-argument errors read like advice: a misspelt argument names the closest real one, a value out of range
names the range, a wrong type the expected one; never pydantic's raw report or its docs link."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_llm.schemas import SamplingOptions
from mcp_llm.server.arg_errors import describe
from tests.support.errors import PYDANTIC


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 16
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    offset: Annotated[int, Field(ge=0)] = 0
    stop: str | list[str] | None = None
    wait: bool = True
    status: Literal["queued", "running"] | None = None
    prompts: Annotated[list[str], Field(min_length=1)] = ["a"]


def message(arguments: dict, fields: object = None) -> str:
    with pytest.raises(ValidationError) as caught:
        Args.model_validate(arguments)
    text = describe(caught.value, Args.model_json_schema()["properties"] if fields is None else fields)
    assert not any(marker in text for marker in PYDANTIC), text
    return text


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"prompt": "a", "max_tokns": 3}, "unknown argument `max_tokns`; did you mean `max_tokens`?"),
        ({"prompt": "a", "temperatur": 0}, "unknown argument `temperatur`; did you mean `temperature`?"),
        ({"prompt": "a", "temperature": 5}, "`temperature` must be between 0 and 2; got 5"),
        ({"prompt": "a", "max_tokens": 0}, "`max_tokens` must be between 1 and 4096; got 0"),
        ({"prompt": "a", "offset": -1}, "`offset` must be greater than or equal to 0; got -1"),
        ({"prompt": "a", "max_tokens": "many"}, '`max_tokens` must be a whole number; got "many"'),
        ({"prompt": "a", "wait": "soon"}, '`wait` must be true or false; got "soon"'),
        ({"prompt": "a", "stop": 5}, "`stop` must be a string or a list; got 5"),
        ({"prompt": "a", "status": "asleep"}, "`status` must be one of 'queued' or 'running'; got \"asleep\""),
        ({"prompt": "a", "prompts": []}, "`prompts` must have at least 1 item; got []"),
        ({}, "missing required argument `prompt`"),
    ],
)
def test_each_kind_of_mistake_is_said_in_words(arguments: dict, expected: str) -> None:
    assert message(arguments) == expected


def test_no_close_name_lists_the_arguments_and_several_mistakes_are_all_named() -> None:
    text = message({"prompt": "a", "zebra": 1}, ["prompt", "max_tokens"])
    assert text == "unknown argument `zebra`; the arguments are `prompt`, `max_tokens`"
    both = message({"prompt": "a", "max_tokns": 3, "temperature": 9})
    assert "did you mean `max_tokens`?" in both and "`temperature` must be between 0 and 2; got 9" in both
    # with names only (no schemas) a bound is still said, as the one pydantic checked
    assert message({"prompt": "a", "temperature": 5}, ["prompt", "temperature"]) == (
        "`temperature` must be less than or equal to 2; got 5"
    )


def test_nested_fields_are_named_by_their_path() -> None:
    class Message(BaseModel):
        model_config = ConfigDict(extra="forbid")
        role: Literal["user", "assistant"]

    class Chat(BaseModel):
        messages: list[Message]

    with pytest.raises(ValidationError) as caught:
        Chat.model_validate({"messages": [{"role": "user"}, {"role": "robot", "colour": "red"}]})
    text = describe(caught.value, ["messages"])
    assert "`messages[1].role` must be one of 'user' or 'assistant'" in text
    assert "unknown field `messages[1].colour`" in text


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"logprobs": 21}, "`logprobs` must be between 0 and 20; got 21"),
        ({"logprobs": False}, "`logprobs` must be a whole number; got false"),
        ({"prompt_logprobs": -1}, "`prompt_logprobs` must be between 0 and 20; got -1"),
        ({"n": 0}, "`n` must be between 1 and 16; got 0"),
        ({"n": True}, "`n` must be a whole number; got true"),
        (
            {"n": 3, "temperature": 0},
            "n 3 samples need a temperature above 0 (at 0 every sample is the same greedy answer): "
            "give a temperature such as 0.7, or n 1",
        ),
        (
            {"n": 2, "prompt_logprobs": 0},
            "prompt_logprobs score the prompt, the same for every sample: ask for them with n 1",
        ),
    ],
)
def test_agent_options_take_whole_numbers_in_range_and_no_booleans(arguments: dict, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SamplingOptions.model_validate(arguments)
    assert describe(caught.value, SamplingOptions.model_json_schema()["properties"]) == expected
