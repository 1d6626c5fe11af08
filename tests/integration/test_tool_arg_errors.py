"""Tool calls with wrong arguments, through a real client on the shared engine, get advice in words (the wording
itself is tests/unit/test_arg_errors.py)."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.support.errors import PYDANTIC

pytestmark = pytest.mark.anyio

# generate's agent options out of range or of the wrong type (a boolean too: `logprobs: false` is no 0)
AGENT_OPTIONS = [
    ("generate", {"prompt": "hi", **bad}, expected)
    for bad, expected in [
        ({"logprobs": -1}, "`logprobs` must be between 0 and 20; got -1"),
        ({"logprobs": 21}, "`logprobs` must be between 0 and 20; got 21"),
        ({"logprobs": "many"}, '`logprobs` must be a whole number; got "many"'),
        ({"logprobs": False}, "`logprobs` must be a whole number; got false"),
        ({"logprobs": 2.5}, "`logprobs` must be a whole number; got 2.5"),
        ({"prompt_logprobs": -3}, "`prompt_logprobs` must be between 0 and 20; got -3"),
        ({"prompt_logprobs": 100}, "`prompt_logprobs` must be between 0 and 20; got 100"),
        ({"prompt_logprobs": [1]}, "`prompt_logprobs` must be a whole number; got [1]"),
        ({"n": 0}, "`n` must be between 1 and 16; got 0"),
        ({"n": -2}, "`n` must be between 1 and 16; got -2"),
        ({"n": 17}, "`n` must be between 1 and 16; got 17"),
        ({"n": "three"}, '`n` must be a whole number; got "three"'),
        ({"n": None}, "`n` must be a whole number; got null"),
        ({"n": True}, "`n` must be a whole number; got true"),
        ({"n": 2, "temperature": 0}, "n 2 samples need a temperature above 0"),
        ({"n": 2, "prompt_logprobs": 1}, "ask for them with n 1"),
    ]
]


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("generate", {"prompt": "hi", "max_tokns": 4}, "unknown argument `max_tokns`; did you mean `max_tokens`?"),
        ("generate", {"prompt": "hi", "temperature": 5}, "`temperature` must be between 0 and 2; got 5"),
        ("batch", {"prompts": ["a"], "temprature": 0}, "unknown argument `temprature`; did you mean `temperature`?"),
        ("batch", {"prompts": ["a"], "wait": "soon"}, "`wait` must be true or false"),
        ("job_status", {"jobid": "x"}, "unknown argument `jobid`; did you mean `job_id`?"),
        ("count_tokens", {"promt": "hi"}, "unknown argument `promt`; did you mean `prompt`?"),
        ("generate", {"prompt": "hi", "priority": "urgent"}, "`priority` must be one of 'interactive' or 'bulk'"),
        ("usage", {"bucket": "week"}, "`bucket` must be one of 'hour' or 'day'"),
        ("usage", {"since_hours": 0}, "`since_hours` must be greater than 0"),
        ("share_adapter", {"nme": "x"}, "unknown argument `nme`; did you mean `name`?"),
        ("share_adapter", {"name": "x", "shared": "maybe"}, "`shared` must be true or false"),
        *AGENT_OPTIONS,
    ],
)
async def test_tool_calls_with_wrong_arguments_get_the_advice(
    client: Client, tool: str, arguments: dict, expected: str
) -> None:
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text
    assert result.is_error and expected in text, text
    assert not any(marker in text for marker in PYDANTIC), text
