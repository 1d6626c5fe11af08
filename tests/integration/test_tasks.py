"""Long work the protocol's way, with real SDK clients on the real engine: Tasks on 2025-11-25 and on
2026-07-28, keep-alive progress, large results as resource links, confirmation by elicitation."""

from __future__ import annotations

import itertools
import json
import time

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import TypeAdapter

from mcp_llm.core.services import Services
from mcp_llm.server.task_client import TaskPolling, cancel_task, get_task
from tests.support.tasks import poll, start_task

pytestmark = pytest.mark.anyio
PROMPTS = [f"Item {i}: name a colour." for i in range(200)]


async def test_tools_say_which_take_tasks(app: MCPServer) -> None:
    async with Client(app, mode="legacy") as client:
        listed = {t.name: t.execution for t in (await client.list_tools()).tools}
    assert listed["batch"].task_support == "optional" and listed["quantize"].task_support == "optional"
    assert listed["generate"] is None


async def test_a_task_batch_of_200_matches_the_blocking_batch(app: MCPServer) -> None:
    arguments = {"prompts": PROMPTS, "max_tokens": 4, "temperature": 0}
    async with Client(app, mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        started = time.monotonic()
        task = await start_task(client, "batch", arguments)
        assert task.status == "working" and time.monotonic() - started < 5  # returned at once
        statuses = await poll(client, task.task_id)
        assert statuses[-1].status == "completed"
        assert any(s.status_message and "/200 items" in s.status_message for s in statuses[:-1])
        request = types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task.task_id))
        from_task = await client.session.send_request(request, types.CallToolResult)
        listed = await client.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        blocking = await client.call_tool("batch", arguments)
        texts = await all_texts(client, from_task.structured_content)
        assert len(texts) == 200 and texts == await all_texts(client, blocking.structured_content)
    assert task.task_id in [t.task_id for t in listed.tasks]


async def test_every_task_reports_its_ttl_the_server_keeps_it_for(app: MCPServer, services: Services) -> None:
    """The ttl is required in every Task: one asked for none gets the server's retention, one asked for more
    than the retention is capped to it (the receiver chooses, says the spec); tasks/list validates either way."""
    retention = int(services.settings.task_retention_s * 1000)
    async with Client(app, mode="legacy") as client:
        tasks = [await start_task(client, "batch", {"prompts": ["hi"], "max_tokens": 1}, ttl) for ttl in (None, 10**12)]
        listed = await client.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        got = [(await poll(client, t.task_id))[-1] for t in tasks]
    assert [t.ttl for t in tasks] == [g.ttl for g in got] == [retention, retention]
    assert {t.task_id: t.ttl for t in listed.tasks if t.task_id in {x.task_id for x in tasks}} == {
        t.task_id: retention for t in tasks
    }


async def all_texts(client: Client, batch: dict) -> list[str]:
    """Every item's text of a batch result, inline or (past max_result_chars) through job_results."""
    if batch["results"] is not None:
        return [r["text"] for r in batch["results"]]
    arguments = {"job_id": batch["job"]["job_id"], "limit": 1000, "max_chars": 10_000_000}
    page = (await client.call_tool("job_results", arguments)).structured_content
    return [r["text"] for r in page["items"]]


async def test_a_task_on_2026_07_28_through_the_tasks_extension(app: MCPServer) -> None:
    seen: list[dict] = []
    async with Client(app, extensions=[TaskPolling(on_status=seen.append, poll_s=0.1)]) as client:
        assert client.protocol_version == "2026-07-28"
        result = await client.call_tool("batch", {"prompts": PROMPTS[:20], "max_tokens": 8, "temperature": 0})
    assert not result.is_error and result.structured_content["job"]["completed"] == 20
    assert seen[0]["status"] == "working" and seen[-1]["status"] == "completed" and "result" in seen[-1]


async def test_a_client_without_the_extension_gets_the_plain_result(app: MCPServer) -> None:
    async with Client(app) as client:
        result = await client.call_tool("batch", {"prompts": PROMPTS[:3], "max_tokens": 2})
    assert result.structured_content["job"]["status"] == "completed"


@pytest.mark.parametrize("era", ["legacy", "auto"])
async def test_cancelling_a_task_stops_its_engine_work(app: MCPServer, services: Services, era: str) -> None:
    engine = services.engine
    long = {"prompts": ["Once upon a time"] * 4, "max_tokens": 1500, "ignore_eos": True}
    async with Client(app, mode=era, extensions=[TaskPolling()]) as client:
        if era == "legacy":
            task_id = (await start_task(client, "batch", long)).task_id
        else:  # the 2026 handle, taken by hand: call with the raw session so the claim does not poll it
            params = types.CallToolRequestParams(name="batch", arguments=long)
            handle = await client.session.send_request(types.CallToolRequest(params=params), TypeAdapter(dict))
            assert handle["resultType"] == "task"
            task_id = handle["taskId"]
        with anyio.fail_after(30):
            while engine.stats().running < 1:
                await anyio.sleep(0.05)
        await cancel_task(client.session, task_id)
        state = await get_task(client.session, task_id)
    assert state["status"] == "cancelled"
    with anyio.fail_after(15):
        while engine.num_unfinished_requests() or engine.stats().running:
            await anyio.sleep(0.05)


async def test_keep_alive_progress_while_a_slow_item_runs(client: Client, services: Services) -> None:
    """One long item: nothing finishes for seconds, yet progress arrives every progress_interval_s."""
    updates: list[tuple[float, float, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((time.monotonic(), progress, message or ""))

    await client.call_tool(
        "batch",
        {"prompts": ["Tell a long story."], "max_tokens": 120, "ignore_eos": True},
        progress_callback=on_progress,
    )
    waiting = [u for u in updates if u[1] < 1]  # before the item finished (repeats rise in steps below 1)
    interval = services.settings.progress_interval_s
    assert len(waiting) >= 5, updates
    assert all(b[1] > a[1] for a, b in itertools.pairwise(updates)), updates  # each notification's value rises
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(waiting)]
    assert max(gaps) < interval * 5, gaps
    assert all("0/1 items" in m and "tok/s" in m and "so far" in m for _, _, m in waiting)


async def test_a_large_result_comes_back_as_a_link_to_pages_that_add_up(client: Client, services: Services) -> None:
    services.settings.max_result_chars = 4000  # the session's settings object: restored below
    try:
        result = await client.call_tool("batch", {"prompts": PROMPTS[:60], "max_tokens": 12, "temperature": 0})
        summary = result.structured_content
        links = [c for c in result.content if c.type == "resource_link"]
        assert summary["results"] is None and summary["results_omitted"] == 60
        assert "max_result_chars" in result.content[0].text and len(links) == 1
        uri, items = links[0].uri, []
        while uri:
            page = json.loads((await client.read_resource(uri)).contents[0].text)
            assert len(json.dumps(page["items"])) <= 4000 + 200
            items += page["items"]
            uri = page["next"]
        paged = await client.call_tool(
            "job_results", {"job_id": summary["job"]["job_id"], "limit": 1000, "max_chars": 2000}
        )
    finally:
        services.settings.max_result_chars = 60_000
    assert [i["index"] for i in items] == list(range(60)) and all(i["status"] == "done" for i in items)
    assert 0 < len(paged.structured_content["items"]) < 60 and paged.structured_content["next_offset"]


@pytest.mark.parametrize(("answer", "swaps"), [("accept", 1), ("decline", 0), (None, 1)])
async def test_load_model_asks_before_swapping(
    app: MCPServer, services: Services, answer: str | None, swaps: int
) -> None:
    asked: list[str] = []

    async def elicit(context, params: types.ElicitRequestParams):
        asked.append(params.message)
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"proceed": True})
        return types.ElicitResult(action="decline")

    before = services.engine.swaps
    serving = services.engine.model_name
    async with Client(app, mode="legacy", elicitation_callback=elicit if answer else None) as client:
        result = await client.call_tool("load_model", {"name": serving})
    assert services.engine.swaps - before == swaps
    assert bool(asked) == (answer is not None)
    if answer:
        assert "requests in flight" in asked[0] and "batch jobs wait" in asked[0]
    if answer == "decline":
        assert result.is_error and "declined: nothing changed" in result.content[0].text
