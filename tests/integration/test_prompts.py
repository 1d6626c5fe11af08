"""Prompts kept as files, through a real client: list, get with arguments, argument completion. Broken files are
tests/unit/test_prompt_files.py and tests/system/test_start_failures.py."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference

pytestmark = pytest.mark.anyio


async def test_prompts_are_listed_with_their_arguments(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) >= {"review_code", "review_output", "review_serving"}
    args = {a.name: a for a in prompts["review_code"].arguments}
    assert args["code"].required and args["focus"].required and not args["language"].required
    assert "security" in args["focus"].description
    assert prompts["review_code"].title == "Review code"


async def test_get_review_code_renders_the_template(client: Client) -> None:
    result = await client.get_prompt(
        "review_code", {"code": "eval(input())", "focus": "security", "language": "python"}
    )
    text = result.messages[0].content.text
    assert "eval(input())" in text and "**security**" in text and "```python" in text
    assert "injection" in text


async def test_optional_arguments_may_be_left_out(client: Client) -> None:
    result = await client.get_prompt("review_output", {"prompt": "2+2?", "output": "5"})
    text = result.messages[0].content.text
    assert "2+2?" in text and "Also" not in text
    with_criteria = await client.get_prompt("review_output", {"prompt": "2+2?", "output": "5", "criteria": "terse"})
    assert "**Also**: terse" in with_criteria.messages[0].content.text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"code": "x", "focus": "speed"}, "`focus` must be one of style, performance, security"),
        ({"code": "x"}, "focus"),
    ],
)
async def test_bad_prompt_arguments_say_what_to_fix(client: Client, arguments: dict, message: str) -> None:
    with pytest.raises(MCPError, match=message):
        await client.get_prompt("review_code", arguments)


async def test_review_serving_embeds_live_config_and_metrics(client: Client) -> None:
    result = await client.get_prompt("review_serving", {"workload": "chat, 50 users, p95 TTFT < 1 s"})
    assert "50 users" in result.messages[0].content.text
    embedded = {str(m.content.resource.uri): m.content.resource.text for m in result.messages[1:]}
    assert set(embedded) == {"model://config", "metrics://engine"}
    assert '"max_model_len": 2048' in embedded["model://config"] and "latency_ms" in embedded["metrics://engine"]


async def test_enumerated_arguments_complete(client: Client) -> None:
    ref = PromptReference(type="ref/prompt", name="review_code")
    found = await client.complete(ref, {"name": "focus", "value": "s"})
    assert found.completion.values == ["style", "security"]
    everything = await client.complete(ref, {"name": "focus", "value": ""})
    assert everything.completion.values == ["style", "performance", "security"]
    none = await client.complete(ref, {"name": "code", "value": "x"})
    assert none.completion.values == []
