"""MCP Tasks for the long tools (`batch`, `quantize`, `train_adapter`, `merge_adapters`): the call returns a
task at once, the work runs on, and the client polls it, on both protocol lines:

- 2025-11-25 (Tasks in the core spec): the client asks with `params.task`; `tasks/get`, `tasks/result`
  (waits for the end), `tasks/list`, `tasks/cancel`.
- 2026-07-28 (the `io.modelcontextprotocol/tasks` extension, SEP-2663): the client declares the extension
  and the server answers those tools with a task handle (`resultType: "task"`); `tasks/get` carries the
  result once completed; `tasks/cancel`.

Built from the SDK's pieces: an `Extension` whose `intercept_tool_call` starts the task and whose
`MethodBinding`s serve `tasks/*`; task rows live in SQLite beside the jobs. A `batch` task records its job:
after a restart the job resumes and the task answers from it; other tools' tasks interrupted by a restart
say so (their workers do not survive one).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import mcp_types as types
from mcp.server.extension import Extension, MethodBinding
from mcp.server.lowlevel import Server as LowLevelServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from mcp_llm.core import access
from mcp_llm.core.access import Principal
from mcp_llm.core.services import Runtime, Services
from mcp_llm.server.task_client import admit_legacy_task_results
from mcp_llm.server.tools.common import TaskHooks, batch_result, current_task, principal_of

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_TOOLS = frozenset({"batch", "quantize", "train_adapter", "merge_adapters", "benchmark"})
LEGACY = "2025-11-25"  # the revision with Tasks in the core spec
TERMINAL = ("completed", "failed", "cancelled")
JOB_TO_TASK = {"queued": "working", "running": "working", "completed": "completed"}
JOB_TO_TASK |= {"cancelled": "cancelled", "failed": "failed"}


class TaskTable:
    """The `tasks` table: one row per task, the result JSON once it has one."""

    def __init__(self, svc: Services) -> None:
        self.db = svc.store.db

    def create(self, task_id: str, tool: str, ttl_ms: int | None, client: str) -> None:
        now = time.time()
        row = {"task_id": task_id, "tool": tool, "status": "working", "created_at": now, "updated_at": now}
        row |= {"client": client}
        with self.db.conn:
            self.db["tasks"].insert(row | {"ttl_ms": ttl_ms})

    def update(self, task_id: str, **fields: Any) -> None:
        with self.db.conn:
            self.db["tasks"].update(task_id, fields | {"updated_at": time.time()})

    def get(self, task_id: str, caller: Principal | None = None) -> dict:
        """The task's row; an unknown id, or with `caller` one not theirs, is "not found" alike."""
        rows = list(self.db["tasks"].rows_where("task_id = ?", [task_id]))
        if not rows or (caller is not None and not caller.owns(rows[0]["client"])):
            raise MCPError(code=INVALID_PARAMS, message=f"No task {task_id!r} on this server (tasks/list shows yours).")
        return rows[0]

    def page(self, offset: int, limit: int, caller: Principal) -> list[dict]:
        where, args = (None, None) if caller.admin else ("client = ?", [caller.client])
        return list(self.db["tasks"].rows_where(where, args, order_by="created_at desc", offset=offset, limit=limit))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class Tasks(Extension):
    """The Tasks extension over our job store (see the module docstring)."""

    identifier = TASKS_EXTENSION

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._live: dict[str, asyncio.Task] = {}
        self._messages: dict[str, str] = {}
        admit_legacy_task_results()

    # --- starting a task ---
    def _wants_task(self, params: types.CallToolRequestParams, ctx: Any) -> bool:
        if params.name not in TASK_TOOLS:
            return False
        if ctx.protocol_version == LEGACY:
            return params.task is not None
        capabilities = ctx.session.client_capabilities
        declared = capabilities.extensions if capabilities else None
        return bool(declared) and TASKS_EXTENSION in declared and ctx.protocol_version > LEGACY

    async def intercept_tool_call(self, params: types.CallToolRequestParams, ctx: Any, call_next: Any) -> Any:
        if not self._wants_task(params, ctx):
            return await call_next(ctx)
        try:  # a call the caller's role does not allow starts no task
            access.check_tool(principal_of(ctx), params.name, params.arguments or {})
        except access.Forbidden as exc:
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(exc))], is_error=True)
        svc = await self.runtime.wait_ready()
        table = TaskTable(svc)
        task_id = uuid.uuid4().hex
        table.create(task_id, params.name, params.task.ttl if params.task else None, principal_of(ctx).client)
        hooks = TaskHooks(
            on_progress=lambda message: self._messages.__setitem__(task_id, message),
            on_job=lambda job_id: table.update(task_id, job_id=job_id),
        )
        self._live[task_id] = asyncio.create_task(self._run(task_id, table, hooks, ctx, call_next))
        return self._created(svc, task_id, ctx.protocol_version)

    async def _run(self, task_id: str, table: TaskTable, hooks: TaskHooks, ctx: Any, call_next: Any) -> None:
        """The tool call itself, detached from the request that started it; its end is written to the row."""
        current_task.set(hooks)
        try:
            result = await call_next(ctx)
            body = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            message = "the tool reported an error" if body.get("isError") else "done"
            table.update(task_id, status="completed", result=json.dumps(body), status_message=message)
        except asyncio.CancelledError:
            table.update(task_id, status="cancelled", status_message="cancelled")
            raise
        except Exception as exc:  # the handler turns tool errors into results: this is a server fault
            table.update(task_id, status="failed", status_message=f"{type(exc).__name__}: {exc}")
        finally:
            self._live.pop(task_id, None)
            self._messages.pop(task_id, None)

    # --- describing a task ---
    def _state(self, svc: Services, row: dict) -> tuple[str, str | None]:
        """(status, message): live tasks from their progress, a batch task's from its job (also after a
        restart, when the job resumed), and a task whose worker a restart ended says so."""
        status, message = row["status"], row["status_message"]
        if status != "working":
            return status, message
        if row["task_id"] in self._live:
            return "working", self._messages.get(row["task_id"], "started")
        if row["job_id"] and (job := svc.store.job(row["job_id"])) is not None:
            progress = svc.jobs.progress(row["job_id"])
            live = progress.message() if progress else f"{job['completed'] + job['failed']}/{job['total']} items"
            return JOB_TO_TASK.get(job["status"], "working"), live
        return "failed", "interrupted by a server restart before it finished: call the tool again"

    def _fields(self, svc: Services, row: dict) -> dict[str, Any]:
        status, message = self._state(svc, row)
        return {
            "taskId": row["task_id"],
            "status": status,
            "statusMessage": message,
            "createdAt": _iso(row["created_at"]),
            "lastUpdatedAt": _iso(row["updated_at"]),
            "pollInterval": svc.settings.task_poll_interval_ms,
        }

    @staticmethod
    def _ttl_ms(svc: Services, row: dict) -> int:
        """The task's effective ttl: the one asked for, capped by `task_retention_s` (which is also the ttl of a
        task that asked for none); the protocol lets the receiver choose it, and requires it in every Task."""
        retention = int(svc.settings.task_retention_s * 1000)
        return retention if row["ttl_ms"] is None else min(row["ttl_ms"], retention)

    def _task(self, svc: Services, row: dict) -> types.Task:
        fields = self._fields(svc, row) | {"ttl": self._ttl_ms(svc, row)}
        return types.Task.model_validate(fields)

    def _modern(self, svc: Services, row: dict, result_type: str) -> dict[str, Any]:
        fields = {k: v for k, v in self._fields(svc, row).items() if v is not None}
        body = {"resultType": result_type, **fields, "ttlMs": self._ttl_ms(svc, row)}
        body["pollIntervalMs"] = body.pop("pollInterval")
        if body["status"] == "completed" and result_type == "complete":
            body["result"] = self._result_body(svc, row)
        if body["status"] == "failed":
            body["error"] = {"code": -32603, "message": body["statusMessage"]}
        return body

    def _created(self, svc: Services, task_id: str, version: str) -> Any:
        row = TaskTable(svc).get(task_id)
        if version == LEGACY:
            return types.CreateTaskResult(task=self._task(svc, row))
        return self._modern(svc, row, "task")

    def _result_body(self, svc: Services, row: dict) -> dict[str, Any]:
        """The tool's CallToolResult as the client would have had it without a task."""
        if row["result"]:
            return json.loads(row["result"])
        result = batch_result(svc, row["job_id"])
        if isinstance(result, types.CallToolResult):
            return result.model_dump(by_alias=True, mode="json", exclude_none=True)
        text = result.model_dump_json()
        return {"content": [{"type": "text", "text": text}], "structuredContent": json.loads(text)}

    # --- tasks/* ---
    def methods(self) -> list[MethodBinding]:
        legacy_only = frozenset({LEGACY})
        return [
            MethodBinding("tasks/get", types.GetTaskRequestParams, self._get),
            MethodBinding("tasks/result", types.GetTaskPayloadRequestParams, self._get_result, legacy_only),
            MethodBinding("tasks/list", types.PaginatedRequestParams, self._list, legacy_only),
            MethodBinding("tasks/cancel", types.CancelTaskRequestParams, self._cancel),
        ]

    async def _get(self, ctx: Any, params: types.GetTaskRequestParams) -> Any:
        svc = await self.runtime.wait_ready()
        row = TaskTable(svc).get(params.task_id, principal_of(ctx))
        if ctx.protocol_version == LEGACY:
            return types.GetTaskResult.model_validate(self._task(svc, row).model_dump(by_alias=True))
        return self._modern(svc, row, "complete")

    async def _get_result(self, ctx: Any, params: types.GetTaskPayloadRequestParams) -> Any:
        """Waits until the task ends, then answers with the tool's result (2025-11-25 `tasks/result`)."""
        svc = await self.runtime.wait_ready()
        table = TaskTable(svc)
        caller = principal_of(ctx)
        while (status := self._state(svc, row := table.get(params.task_id, caller))[0]) not in TERMINAL:
            await asyncio.sleep(0.2)
        if status != "completed":
            raise MCPError(code=INVALID_PARAMS, message=f"Task {params.task_id} {status}: {self._state(svc, row)[1]}")
        related = {"io.modelcontextprotocol/related-task": {"taskId": params.task_id}}
        return self._result_body(svc, row) | {"_meta": related}

    async def _list(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListTasksResult:
        svc = await self.runtime.wait_ready()
        offset = int(params.cursor) if params is not None and params.cursor and params.cursor.isdigit() else 0
        rows = TaskTable(svc).page(offset, 50, principal_of(ctx))
        cursor = str(offset + len(rows)) if len(rows) == 50 else None
        return types.ListTasksResult(tasks=[self._task(svc, r) for r in rows], next_cursor=cursor)

    async def _cancel(self, ctx: Any, params: types.CancelTaskRequestParams) -> Any:
        """Stop the task's work (its engine requests are aborted) and mark it cancelled."""
        svc = await self.runtime.wait_ready()
        table = TaskTable(svc)
        row = table.get(params.task_id, principal_of(ctx))
        status, _ = self._state(svc, row)
        if status in TERMINAL:
            raise MCPError(code=INVALID_PARAMS, message=f"Task {params.task_id} is already {status}.")
        if (task := self._live.get(params.task_id)) is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif row["job_id"]:
            await svc.jobs.cancel(row["job_id"])
        table.update(params.task_id, status="cancelled", status_message="cancelled by the client")
        row = table.get(params.task_id)
        if ctx.protocol_version == LEGACY:
            return types.CancelTaskResult.model_validate(self._task(svc, row).model_dump(by_alias=True))
        return {"resultType": "complete"}

    async def close(self) -> None:
        """Stop live task calls at shutdown (a batch task's job stays open and resumes with the server)."""
        tasks = list(self._live.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def mark_task_tools(tools: list[types.Tool]) -> list[types.Tool]:
    """Tool listings that say which tools take task-augmented calls (2025-11-25 `execution.taskSupport`)."""
    optional = types.ToolExecution(task_support="optional")
    return [t.model_copy(update={"execution": optional}) if t.name in TASK_TOOLS else t for t in tools]


def legacy_capability() -> types.ServerTasksCapability:
    """What the 2025-11-25 `capabilities.tasks` declares: exactly what we serve (`tasks/list`, `tasks/cancel`,
    task-augmented `tools/call`; no task-augmented sampling or elicitation requests of ours)."""
    return types.ServerTasksCapability(
        list=types.TasksListCapability(),
        cancel=types.TasksCancelCapability(),
        requests=types.ServerTasksRequestsCapability(
            tools=types.TasksToolsCapability(call=types.TasksCallCapability())
        ),
    )


def declare_tasks(server: LowLevelServer) -> None:
    """Declare `capabilities.tasks` in the `initialize` result when the handshake settles on 2025-11-25 (the
    revision whose core spec has Tasks). The SDK derives capabilities from registered handlers, with no hook for
    `tasks`; a middleware adds it to the wire result. At 2026-07-28 the `io.modelcontextprotocol/tasks` extension
    is declared instead (MCPServer advertises every registered extension under `capabilities.extensions`)."""

    async def declare(ctx: Any, call_next: Any) -> Any:
        result = await call_next(ctx)
        if ctx.method == "initialize" and isinstance(result, dict) and result.get("protocolVersion") == LEGACY:
            declared = legacy_capability().model_dump(by_alias=True, mode="json", exclude_none=True)
            result = result | {"capabilities": result.get("capabilities", {}) | {"tasks": declared}}
        return result

    server.middleware.append(declare)
