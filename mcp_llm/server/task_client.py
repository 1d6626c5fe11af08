"""For Python clients of the SDK: Tasks on a 2026-07-28 connection, the SDK's way (a `ClientExtension` that
declares `io.modelcontextprotocol/tasks` and claims the `resultType: "task"` handle of `tools/call`).

    async with Client(server, extensions=[TaskPolling()]) as client:
        result = await client.call_tool("batch", {...})   # a task behind the scenes, polled to its end

`client.call_tool` then returns the tool's ordinary result however long the work takes; each poll is a short
`tasks/get`, so no request outlives a host's timeout. `on_status` sees every status on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Literal

import mcp_types as types
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from pydantic import TypeAdapter

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = ("completed", "failed", "cancelled")


class TaskHandle(types.Result):
    """What a server answers a tool call with when it made a task of it (SEP-2663 CreateTaskResult)."""

    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None


class TaskPolling(ClientExtension):
    """Declares the Tasks extension and polls each task handle to its end."""

    identifier = TASKS_EXTENSION

    def __init__(self, on_status: Callable[[dict[str, Any]], None] | None = None, poll_s: float | None = None) -> None:
        self.on_status, self.poll_s = on_status, poll_s

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return (ResultClaim(result_type="task", model=TaskHandle, resolve=self._resolve),)

    async def _resolve(self, handle: TaskHandle, ctx: ClaimContext) -> types.CallToolResult:
        wait_s = self.poll_s or (handle.poll_interval_ms or 1000) / 1000
        while True:
            state = await get_task(ctx.session, handle.task_id)
            if self.on_status is not None:
                self.on_status(state)
            if state["status"] in TERMINAL:
                break
            await asyncio.sleep(wait_s)
        if state["status"] == "completed":
            return types.CallToolResult.model_validate(state["result"])
        message = state.get("error", {}).get("message") or state.get("statusMessage") or state["status"]
        return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


async def get_task(session: Any, task_id: str) -> dict[str, Any]:
    """One `tasks/get`, as the raw dict (its shape depends on the task's status)."""
    request = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id))
    return await session.send_request(request, TypeAdapter(dict[str, Any]))


async def cancel_task(session: Any, task_id: str) -> dict[str, Any]:
    request = types.CancelTaskRequest(params=types.CancelTaskRequestParams(task_id=task_id))
    return await session.send_request(request, TypeAdapter(dict[str, Any]))


def admit_legacy_task_results() -> None:
    """mcp 2.3 defines the 2025-11-25 task types, but its check of `tools/call` results at that revision (the
    server's before sending, the client's on receipt over a real transport) admits only CallToolResult, though
    that revision answers a task-augmented call with CreateTaskResult. Admit exactly that shape, validated
    against the SDK's own 2025-11-25 model; all else is unchanged. The server calls this; a Python client of
    the SDK that makes 2025-11-25 task-augmented calls calls it too."""
    from mcp_types import _v2025_11_25 as wire
    from mcp_types import methods

    original = methods.serialize_server_result
    if getattr(original, "admits_tasks", False):
        return

    def serialize(method: str, version: str, data: Any, **kwargs: Any) -> dict[str, Any]:
        if method == "tools/call" and version == "2025-11-25" and "task" in data and "content" not in data:
            model = wire.CreateTaskResult.model_validate(data, by_name=False)
            return model.model_dump(by_alias=True, mode="json", exclude_none=True)
        return original(method, version, data, **kwargs)

    serialize.admits_tasks = True  # type: ignore[attr-defined]
    methods.serialize_server_result = serialize
