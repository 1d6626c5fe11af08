"""Long work as a client sees it: 2025-11-25 tasks (start one, poll it to the end) and the keep-alive progress
a call hears while it waits for the engine (a start, a swap, a restart)."""

from __future__ import annotations

import re

import anyio
import mcp_types as types
from mcp import Client

from mcp_llm.server.task_client import admit_legacy_task_results

# What a waiting call hears: "engine starting[: what it does now], N s so far".
KEEP_ALIVE = re.compile(r"^engine starting(: [^,]+)?, \d+ s so far$")


async def start_task(client: Client, tool: str, arguments: dict, ttl: int | None = 600_000) -> types.Task:
    """A task-augmented tools/call (2025-11-25): returns the task at once."""
    admit_legacy_task_results()  # the SDK client's result check, as the server's (see task_client)
    params = types.CallToolRequestParams(name=tool, arguments=arguments, task=types.TaskMetadata(ttl=ttl))
    created = await client.session.send_request(types.CallToolRequest(params=params), types.CreateTaskResult)
    return created.task


async def poll(client: Client, task_id: str, timeout: float = 300) -> list[types.GetTaskResult]:
    seen = []
    with anyio.fail_after(timeout):
        while True:
            request = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id))
            seen.append(await client.session.send_request(request, types.GetTaskResult))
            if seen[-1].status in ("completed", "failed", "cancelled"):
                return seen
            await anyio.sleep(0.2)
