"""Pieces every tool uses: reaching the services, turning our errors into tool errors, flat sampling args."""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from pydantic import ConfigDict, ValidationError, create_model

from mcp_llm.errors import InputError, Unavailable
from mcp_llm.schemas import SamplingOptions
from mcp_llm.services import Services

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class TaskHooks:
    """Set while a tool runs as an MCP task (tasks.py): progress becomes the task's status message, and a
    batch job the tool starts is recorded on the task (so the task outlives a restart with its job)."""

    on_progress: Callable[[str], None]
    on_job: Callable[[str], None]


current_task: ContextVar[TaskHooks | None] = ContextVar("current_task", default=None)


async def report_progress(ctx: Context, done: float, total: float | None, message: str) -> None:
    """Progress of a long tool: a notification to the caller, or the task's status message under a task."""
    hooks = current_task.get()
    if hooks is not None:
        hooks.on_progress(message)
        return
    await ctx.report_progress(done, total, message)


def services(ctx: Context) -> Services:
    """The shared services the lifespan created (the engine is ready: `tool_errors` waited for it)."""
    return ctx.request_context.lifespan_context.require()


def client_name(ctx: Context) -> str:
    """Who is calling, for the request log and per-client limits: the bearer token's client over
    authenticated HTTP, else the client's self-reported name (clientInfo), else 'unknown'."""
    token = get_access_token()
    if token is not None:
        return token.client_id
    try:
        return ctx.session.client_params.client_info.name
    except AttributeError:
        return "unknown"


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wait for the engine (it starts in the background), then run the tool; InputError/Unavailable
    reach the client as a tool error carrying our message."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            await kwargs["ctx"].request_context.lifespan_context.wait_ready()
            return await fn(*args, **kwargs)
        except (InputError, Unavailable) as exc:
            raise ToolError(str(exc)) from exc
        except sqlite3.OperationalError as exc:  # disk full, read-only data dir, a lock held elsewhere
            raise ToolError(
                f"The server's database cannot be written now ({exc}): nothing was accepted. Retry once the "
                "cause is fixed (disk space, a read-only data dir, another process holding a lock)."
            ) from exc

    return wrapper


def flat_sampling_options(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Expose SamplingOptions' fields as top-level tool arguments, handed to `fn` as `sampling=`.

    One definition of every sampling field (bounds, defaults, docs) serves every tool that samples,
    while clients see flat arguments (`temperature`, `max_tokens`, ...) in the tool's inputSchema.
    """
    signature = inspect.signature(fn, eval_str=True)
    own = [p for name, p in signature.parameters.items() if name != "sampling"]
    fields = SamplingOptions.model_fields
    flat = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=info.default, annotation=Annotated[info.annotation, info]
        )
        for name, info in fields.items()
    ]
    keyword_only = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

    @functools.wraps(fn)
    async def wrapper(**kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name in fields if name in kwargs}
        try:
            sampling = SamplingOptions(**options)
        except ValidationError as exc:
            raise ToolError(f"Invalid sampling options: {exc}") from exc
        return await fn(sampling=sampling, **kwargs)

    del wrapper.__wrapped__  # inspect must see the flat signature, not fn's
    wrapper.__signature__ = signature.replace(parameters=keyword_only + flat)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in keyword_only + flat} | {
        "return": signature.return_annotation
    }
    return wrapper


def strict_tool(fn: Callable[..., Any]) -> Tool:
    """A Tool whose arguments reject unknown names (a misspelt `temperatur` is an error, not ignored)."""
    tool = Tool.from_function(fn)
    base = tool.fn_metadata.arg_model
    strict = create_model(base.__name__, __base__=base, __config__=None)
    strict.model_config = ConfigDict(**base.model_config, extra="forbid")
    strict.model_rebuild(force=True)
    tool.fn_metadata.arg_model = strict
    tool.parameters = strict.model_json_schema(by_alias=True)
    return tool


def require_local_engine(svc: Services, tool: str, instead: str) -> None:
    """InputError when the server serves a remote vLLM deployment: `tool` needs the engine in this process."""
    if svc.engine.backend != "local":
        raise InputError(
            f"`{tool}` needs the in-process engine, and this server forwards to the remote vLLM server at "
            f"{svc.settings.base_url} (--backend openai). {instead}"
        )
