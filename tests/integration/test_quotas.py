"""Quotas and usage over real HTTP with real tokens on the shared engine: a user past its output tokens per minute
is refused with the quota, its usage, the limit and the reset, and served again once the minute turns; another
client is unaffected; open jobs are bounded; usage://me adds up to exactly what the completions reported;
admins see every client's usage (tool, resource, Prometheus counters)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from mcp_llm.core.access import Principal
from mcp_llm.core.quotas import Quotas
from mcp_llm.core.services import Services
from tests.support.inproc import client_as, http_app

pytestmark = pytest.mark.anyio

TOKENS = {
    "tok-dora": Principal("dora", "user"),
    "tok-eve": Principal("eve", "user"),
    "tok-frank": Principal("frank-usage", "user"),  # no other test uses it: usage is all-time
    "tok-ops": Principal("ops", "admin"),
}
QUOTAS = {"quota_output_tokens_per_minute": 20, "quota_concurrent_jobs": 1}
SIXTEEN = {"prompt": "Count:", "max_tokens": 16, "ignore_eos": True, "temperature": 0}


@pytest.fixture(scope="module")
async def url(services: Services) -> AsyncIterator[str]:
    """The shared engine behind an HTTP app whose users have QUOTAS (admins none)."""
    before = services.recorder.quotas
    services.recorder.quotas = Quotas(services.settings.model_copy(update=QUOTAS), services.store)
    try:
        async with http_app(services, TOKENS) as url:
            yield url
    finally:
        services.recorder.quotas = before


def message(result: types.CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


async def test_past_its_tokens_per_minute_a_user_is_refused_until_the_minute_turns(url: str) -> None:
    async with client_as(url, "tok-dora") as dora:
        if time.time() % 60 > 50:  # two calls must land in one minute
            await anyio.sleep(61 - time.time() % 60)
        for _ in range(2):  # 16, then 32 tokens: the check is before each call, against 20
            assert not (await dora.call_tool("generate", SIXTEEN)).is_error
        refused = message(await dora.call_tool("generate", SIXTEEN))
        assert "Quota exceeded: client `dora` has used 32 of its output_tokens_per_minute quota of 20" in refused
        assert "it resets in" in refused and "usage://me" in refused
        state = json.loads((await dora.read_resource("usage://me")).contents[0].text)["quotas"]
        assert state["output_tokens_per_minute"]["used"] == 32 and state["output_tokens_per_minute"]["limit"] == 20
        async with client_as(url, "tok-eve") as eve:  # per client: another user is served
            assert not (await eve.call_tool("generate", SIXTEEN)).is_error
        await anyio.sleep(max(state["output_tokens_per_minute"]["resets_at"] - time.time(), 0) + 0.5)
        assert not (await dora.call_tool("generate", SIXTEEN)).is_error
    async with client_as(url, "tok-ops") as ops:  # admins have no quota unless a quota file gives one
        for _ in range(3):
            assert not (await ops.call_tool("generate", SIXTEEN)).is_error


async def test_open_jobs_are_bounded_per_client(url: str) -> None:
    long = {"prompts": ["Count slowly:"] * 2, "max_tokens": 200, "ignore_eos": True, "wait": False}
    async with client_as(url, "tok-eve") as eve:
        first = await eve.call_tool("batch", long)
        assert not first.is_error
        refused = message(await eve.call_tool("batch", long))
        assert "concurrent_jobs quota of 1" in refused and "cancel_job frees one now" in refused
        await eve.call_tool("cancel_job", {"job_id": first.structured_content["job"]["job_id"]})


async def test_usage_adds_up_to_what_the_completions_reported(url: str) -> None:
    async with client_as(url, "tok-frank") as frank:
        prompt = output = 0
        for max_tokens in (3, 5):
            usage = (await frank.call_tool("generate", SIXTEEN | {"max_tokens": max_tokens})).structured_content
            prompt, output = prompt + usage["usage"]["prompt_tokens"], output + usage["usage"]["completion_tokens"]
        batch = (await frank.call_tool("batch", {"prompts": ["a", "b c"], "max_tokens": 4})).structured_content
        for item in batch["results"]:
            prompt, output = prompt + item["usage"]["prompt_tokens"], output + item["usage"]["completion_tokens"]
        mine = json.loads((await frank.read_resource("usage://me")).contents[0].text)
        assert mine["last_30_days"] == {"requests": 4, "errors": 0, "prompt_tokens": prompt, "output_tokens": output}
        assert sum(b["output_tokens"] for b in mine["by_hour"]) == output and mine["role"] == "user"
        assert "needs the admin role" in message(await frank.call_tool("usage", {}))
        with pytest.raises(MCPError, match="needs the admin role"):
            await frank.read_resource("usage://clients")
    async with client_as(url, "tok-ops") as ops:
        report = (await ops.call_tool("usage", {"since_hours": 1})).structured_content
        assert report["totals"]["frank-usage"]["output_tokens"] == output
        everyone = json.loads((await ops.read_resource("usage://clients")).contents[0].text)
        assert everyone["totals"]["frank-usage"]["prompt_tokens"] == prompt
        exposition = (await ops.read_resource("metrics://prometheus")).contents[0].text
        assert f'mcp_llm_client_tokens_total{{client="frank-usage",kind="output"}} {float(output)}' in exposition
