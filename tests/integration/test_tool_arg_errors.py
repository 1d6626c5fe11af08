"""Tool calls with wrong arguments, through a real client on the shared engine, get advice in words (the wording
itself is tests/unit/test_arg_errors.py)."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.support.errors import PYDANTIC

pytestmark = pytest.mark.anyio


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
    ],
)
async def test_tool_calls_with_wrong_arguments_get_the_advice(
    client: Client, tool: str, arguments: dict, expected: str
) -> None:
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text
    assert result.is_error and expected in text, text
    assert not any(marker in text for marker in PYDANTIC), text
