"""The `benchmark` tool on the real engine through a real MCP client: its table adds up, its chart is a real
PNG, runs are stored and compared, variants swap the engine and roll it back, bad workloads are clear errors."""

from __future__ import annotations

import base64
import io
import json

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    CallToolResult,
    GetTaskPayloadRequest,
    GetTaskPayloadRequestParams,
    ImageContent,
    ResourceLink,
    TextContent,
)
from PIL import Image

from mcp_llm.core.charts import DPI, SIZE_IN
from mcp_llm.core.services import Services
from tests.support.flows import ERAS, ScriptedHost, run
from tests.support.tasks import poll, start_task

pytestmark = pytest.mark.anyio
SMALL = {
    "requests": 6,
    "prompt_tokens": {"min": 16, "max": 48},
    "output_tokens": {"min": 4, "max": 12},
    "shared_prefix_fraction": 0.5,
}


def png_of(result) -> Image.Image:
    images = [c for c in result.content if isinstance(c, ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    return Image.open(io.BytesIO(base64.b64decode(images[0].data)))


async def test_benchmark_returns_a_table_that_adds_up_and_a_png_chart(client: Client) -> None:
    result = await client.call_tool("benchmark", {"workload": SMALL, "concurrency": [1, 3]})
    assert not result.is_error, result.content
    run = result.structured_content
    assert [(r["variant"], r["concurrency"]) for r in run["rows"]] == [("current", 1), ("current", 3)]
    for row in run["rows"]:
        assert (row["requests"], row["completed"], row["failed"]) == (6, 6, 0)
        assert row["output_tokens_per_s"] > 0 and row["ttft_ms"]["p50"] <= row["ttft_ms"]["p99"]
    assert run["swaps"] == 0 and run["estimate_s"] > 0
    image = png_of(result)
    image.load()  # decodes the whole image
    assert image.size == (int(SIZE_IN[0] * DPI), int(SIZE_IN[1] * DPI))
    assert len(image.getcolors(1 << 16) or range(257)) > 16  # lines and text were drawn, not a blank canvas
    text = next(c.text for c in result.content if isinstance(c, TextContent))
    assert "| current | 3 | 6/6 |" in text
    link = next(c for c in result.content if isinstance(c, ResourceLink))
    stored = json.loads((await client.read_resource(link.uri)).contents[0].text)
    assert stored["rows"] == run["rows"] and stored["workload"]["requests"] == 6
    chart = (await client.read_resource(f"{link.uri}/chart")).contents[0]
    assert base64.b64decode(chart.blob)[:8] == b"\x89PNG\r\n\x1a\n"
    index = json.loads((await client.read_resource("benchmarks://index")).contents[0].text)
    assert run["benchmark_id"] in [entry["id"] for entry in index]


async def test_stored_runs_compare_side_by_side_and_replay_uses_the_request_log(client: Client) -> None:
    for i in range(3):
        await client.call_tool("generate", {"prompt": f"Replay me {i}:", "max_tokens": 5, "temperature": 0})
    replay = await client.call_tool("benchmark", {"workload": {"kind": "replay", "requests": 3}, "concurrency": [2]})
    assert not replay.is_error, replay.content
    assert replay.structured_content["rows"][0]["completed"] == 3
    prompts = {"kind": "prompts", "prompts": ["Say hi.", "Name a river."], "requests": 4}
    mine = await client.call_tool("benchmark", {"workload": prompts, "concurrency": [4]})
    ids = [replay.structured_content["benchmark_id"], mine.structured_content["benchmark_id"]]
    compared = await client.call_tool("compare_benchmarks", {"benchmark_ids": ids})
    assert not compared.is_error, compared.content
    assert [r["variant"] for r in compared.structured_content["rows"]] == [f"{i}: current" for i in ids]
    png_of(compared).load()
    missing = await client.call_tool("compare_benchmarks", {"benchmark_ids": ["nope"]})
    assert missing.is_error and "benchmarks://index" in missing.content[0].text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"workload": {"prompt_tokens": {"min": -4, "max": 8}}}, "greater than or equal to 1"),
        ({"workload": {"output_tokens": {"min": 9, "max": 3}}}, "below min"),
        ({"concurrency": [0, 4]}, "greater than or equal to 1"),
        ({"concurrency": []}, "at least 1 item"),
        ({"workload": {"kind": "prompts"}}, "needs a non-empty `prompts`"),
        ({"workload": {"requests": 5000, "output_tokens": {"min": 1000, "max": 1500}}}, "over the time budget"),
        ({"workload": {"prompt_tokens": {"min": 3000, "max": 3000}}}, "do not fit the context"),
        ({"variants": [{"max_num_seqs": 2, "colour": "red"}]}, "colour"),
        ({"variants": [{"name": "current", "max_num_seqs": 2}]}, "distinct `name`"),
    ],
)
async def test_bad_workloads_are_clear_errors(client: Client, arguments: dict, message: str) -> None:
    result = await client.call_tool("benchmark", arguments)
    assert result.is_error
    assert message in result.content[0].text, result.content[0].text


@pytest.mark.slow
async def test_variants_are_served_through_the_swap_and_rolled_back(app: MCPServer, services: Services) -> None:
    before, config = services.engine.spec, services.engine.config()
    swaps = services.engine.swaps
    arguments = {
        "workload": {"requests": 4, "prompt_tokens": {"min": 16, "max": 16}, "output_tokens": {"min": 8, "max": 8}},
        "concurrency": [2],
        "variants": [{"name": "two-seqs", "max_num_seqs": 2, "enable_prefix_caching": False}],
        "confirm": True,
    }
    async with Client(app) as client:
        result = await client.call_tool("benchmark", arguments)
    assert not result.is_error, result.content
    rows = result.structured_content["rows"]
    assert [r["variant"] for r in rows] == ["current", "two-seqs"]
    assert all(r["completed"] == 4 for r in rows)
    assert result.structured_content["swaps"] == 2 and services.engine.swaps == swaps + 2
    assert services.engine.spec.args == before.args  # the original engine serves again
    same = {"adapters", "kernels"}  # what the engine learnt while serving (adapters used), not its settings
    assert services.engine.config().model_dump(exclude=same) == config.model_dump(exclude=same)


TINY = {"requests": 4, "prompt_tokens": {"min": 16, "max": 16}, "output_tokens": {"min": 8, "max": 8}}


@pytest.mark.parametrize("era", ERAS)
async def test_tune_serving_stops_when_the_host_says_so(app: MCPServer, era: str) -> None:
    host = ScriptedHost('{"thought": "the baseline is fine", "stop": true}')
    arguments = {"workload": TINY, "concurrency": 2, "confirm": True}
    result, _ = await run(app, host, "tune_serving", arguments, era)
    assert not result.is_error, result.content
    out = result.structured_content
    assert (out["stopped"], out["best"], out["applied"], out["sampling_calls"]) == ("stop", {}, False, 1)
    assert len(out["trials"]) == 1 and out["trials"][0]["row"]["completed"] == 4
    assert "Baseline measured: current:" in host.requests[0].messages[0].content.text
    png_of(result).load()


async def test_tune_serving_stops_within_its_budget(app: MCPServer, services: Services) -> None:
    host = ScriptedHost()  # never asked: after the baseline, one more variant (two swaps) cannot fit in 40 s
    swaps = services.engine.swaps
    result, _ = await run(app, host, "tune_serving", {"workload": TINY, "budget_s": 40, "confirm": True}, "legacy")
    assert not result.is_error, result.content
    assert result.structured_content["stopped"] == "budget" and host.requests == []
    assert result.structured_content["spent_s"] <= 40 and services.engine.swaps == swaps
    over = await run(app, host, "tune_serving", {"workload": {"requests": 5000}, "budget_s": 40}, "legacy")
    assert over[0].is_error and "over the time budget of 40 s" in over[0].content[0].text


@pytest.mark.slow
async def test_tune_serving_reasks_once_after_an_invalid_setting_then_measures(
    app: MCPServer, services: Services
) -> None:
    host = ScriptedHost(
        '{"thought": "more", "variant": {"max_num_seqs": 0, "colour": "red"}}',
        '{"thought": "fewer sequences", "variant": {"max_num_seqs": 2}}',
    )
    before, swaps = services.engine.spec, services.engine.swaps
    arguments = {"workload": TINY, "concurrency": 2, "max_variants": 1, "confirm": True}
    result, _ = await run(app, host, "tune_serving", arguments, "legacy")
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["stopped"] == "max_variants" and out["sampling_calls"] == 2
    reask = host.requests[1].messages[-1].content.text
    assert "not usable" in reask and "max_num_seqs" in reask and "colour" in reask
    assert [t["variant"] for t in out["trials"]] == [{}, {"max_num_seqs": 2}]
    assert all(t["row"]["completed"] == 4 for t in out["trials"])
    assert out["best"] in ({}, {"max_num_seqs": 2}) and not out["applied"]
    assert services.engine.swaps == swaps + 2 and services.engine.spec.args == before.args


async def test_benchmark_runs_as_a_task_with_progress(app: MCPServer) -> None:
    async with Client(app, mode="legacy") as client:
        task = await start_task(client, "benchmark", {"workload": TINY, "concurrency": [1, 2]})
        statuses = await poll(client, task.task_id)
        request = GetTaskPayloadRequest(params=GetTaskPayloadRequestParams(task_id=task.task_id))
        payload = await client.session.send_request(request, CallToolResult)
    assert statuses[-1].status == "completed"
    assert any(s.status_message and "current: concurrency" in s.status_message for s in statuses), statuses
    assert [r["concurrency"] for r in payload.structured_content["rows"]] == [1, 2]
    assert any(isinstance(c, ImageContent) for c in payload.content)
