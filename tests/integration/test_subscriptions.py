"""Resource subscriptions and log forwarding, in process over the session's engine: a client subscribed to a
`batch(wait=false)` job's `jobs://{id}` is told as it changes (2025-11-25 `resources/subscribe`, and a 2026-07-28
`subscriptions/listen` stream), and no longer once unsubscribed; `logging/setLevel` brings the server's own log
records at or above the level as `notifications/message`."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio

# 8 items of 64 tokens: a few seconds of engine work, so the job is still running when the test subscribes.
JOB = {"prompts": [f"Story {i}:" for i in range(8)], "max_tokens": 64, "ignore_eos": True, "temperature": 0}


@asynccontextmanager
async def legacy_client(app: MCPServer, updates: list[str]) -> AsyncIterator[Client]:
    """A 2025-11-25 client (initialize handshake) that records the URIs of its resource-updated notifications."""

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async with Client(app, mode="legacy", message_handler=on_message) as client:
        yield client


async def start_job(client: Client) -> str:
    started = await client.call_tool("batch", JOB | {"wait": False})
    return started.structured_content["job"]["job_id"]


async def wait_done(client: Client, job_id: str) -> None:
    with anyio.fail_after(180):
        while (await client.call_tool("job_status", {"job_id": job_id})).structured_content["status"] != "completed":
            await anyio.sleep(0.1)


async def subscribed_job(client: Client) -> tuple[str, str]:
    """A started job and its `jobs://` URI, subscribed to."""
    job_id = await start_job(client)
    await client.subscribe_resource(f"jobs://{job_id}")
    return job_id, f"jobs://{job_id}"


async def test_a_subscribed_job_announces_its_progress_and_end(app: MCPServer, settings: Settings) -> None:
    updates: list[str] = []
    async with legacy_client(app, updates) as client:
        job_id, uri = await subscribed_job(client)
        await wait_done(client, job_id)
        with anyio.fail_after(10):  # its end, at the latest, is announced within an interval
            while uri not in updates:
                await anyio.sleep(settings.progress_interval_s)
        assert set(updates) == {uri}
        body = json.loads((await client.read_resource(uri)).contents[0].text)
        assert body["job"]["status"] == "completed"


async def test_no_updates_after_unsubscribe(app: MCPServer, settings: Settings) -> None:
    updates: list[str] = []
    async with legacy_client(app, updates) as client:
        job_id, uri = await subscribed_job(client)
        await client.unsubscribe_resource(uri)
        watched, _ = await subscribed_job(client)  # a second job, subscribed throughout: the watcher is at work
        await wait_done(client, job_id)
        await wait_done(client, watched)
        await anyio.sleep(5 * settings.progress_interval_s)
        assert uri not in updates
        assert f"jobs://{watched}" in updates


async def test_a_listen_stream_hears_job_updates(app: MCPServer, settings: Settings) -> None:
    """2026-07-28: no resources/subscribe; a subscriptions/listen stream names the URI instead."""
    async with Client(app) as client:
        job_id = await start_job(client)
        uri = f"jobs://{job_id}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            with anyio.fail_after(120):
                async for event in subscription:
                    assert getattr(event, "uri", None) == uri
                    break
        await wait_done(client, job_id)


async def test_set_level_forwards_server_logs_at_or_above_it(app: MCPServer) -> None:
    received: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    server_log = logging.getLogger("mcp_llm.tests.subscriptions")
    async with Client(app, mode="legacy", logging_callback=on_log) as client:
        server_log.error("before anyone asked")  # no level set: nothing is sent
        await client.set_logging_level("warning")
        server_log.info("below the level")
        server_log.warning("the server noticed %s", "something")
        await anyio.to_thread.run_sync(server_log.error, "from a worker thread")
        with anyio.fail_after(10):
            while len([r for r in received if r.logger == server_log.name]) < 2:
                await anyio.sleep(0.05)
        await anyio.sleep(0.2)
    ours = [(r.level, r.logger, r.data) for r in received if r.logger == server_log.name]
    assert ours == [
        ("warning", "mcp_llm.tests.subscriptions", "the server noticed something"),
        ("error", "mcp_llm.tests.subscriptions", "from a worker thread"),
    ]
