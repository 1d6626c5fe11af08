"""Builds the MCPServer: lifespan (one engine for every client), tools, resources, HTTP routes."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.request_state import RequestStateSecurity
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp_types import Tool as MCPTool

from mcp_llm.core.access import Principal
from mcp_llm.core.services import Runtime, Services, open_services
from mcp_llm.engine.base import EngineState
from mcp_llm.server import arg_errors, auth, dashboard, http, prompts, resources
from mcp_llm.server.stdio_guard import AnswerMalformed
from mcp_llm.server.stdio_pipes import loop_stdio
from mcp_llm.server.subscriptions import Notifications
from mcp_llm.server.tasks import Tasks, declare_tasks, mark_task_tools
from mcp_llm.server.tools import (
    adapters,
    batch,
    bench,
    conversations,
    embed,
    flows,
    generate,
    models,
    tuning,
    usage,
)
from mcp_llm.server.tools.common import strict_tool
from mcp_llm.settings import Settings

log = logging.getLogger(__name__)


def package_version() -> str:
    """This package's version, for `serverInfo.version`."""
    try:
        return importlib.metadata.version("mcp-llm")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


INSTRUCTIONS = """\
mcp-llm serves a local LLM through an in-process vLLM engine shared by every client.
Use `generate` for one completion (chat `messages` or raw `prompt`; temperature 0 is deterministic;
`json_schema`, `choice`, `regex` or `grammar` constrain the output; `tools` let the model call functions;
`logprobs` adds a confidence summary), `chat` for a conversation the server keeps (`fork_conversation`,
`delete_conversation`), `batch` for many prompts at once (a persisted job; `wait=false` returns a job id
for `job_status`/`job_results`), `count_tokens` to check a prompt fits the context.
`solve`, `refine` and `summarize_large` let your model reason (MCP sampling) while this engine acts.
`quantize` makes a smaller checkpoint and reports its size, perplexity and speed; `load_model` serves it.
Read `model://config` for the model and limits, `metrics://engine` for live latency and load.
Every tool (adapters, embeddings, benchmarks, the dashboard and the job tools too) is described in `tools/list`."""


async def _serve_engine(
    settings: Settings, runtime: Runtime, stop: asyncio.Event, client: dict[str, Any] | None = None
) -> None:
    """Start the engine in the background (or attach to a parent's engine core: `client`), serve until `stop`,
    then drain; a failed start is reported through the runtime (tool errors, /health) rather than taking the
    server down."""
    try:
        async with open_services(settings, runtime, client):
            await stop.wait()
    except Exception:
        log.exception("the engine failed to start")


def all_tools() -> list[Tool]:
    """Every tool, with strict arguments."""
    families = (generate, conversations, batch, flows, models, adapters, embed, bench, tuning, usage)
    return [strict_tool(fn) for family in families for fn in family.TOOLS]


class Server(MCPServer):
    """MCPServer whose tool listing marks the tools that take task-augmented calls, and whose stdio transport
    answers a malformed line with a JSON-RPC error (stdio_guard) instead of dropping it silently."""

    call_tool = arg_errors.readable_argument_errors(MCPServer.call_tool)  # argument errors in words, no pydantic

    async def list_tools(self) -> list[MCPTool]:
        return mark_task_tools(await super().list_tools())

    async def run_stdio_async(self) -> None:
        async with loop_stdio() as wire, stdio_server(*(wire or ())) as (read_stream, write_stream):
            await self._lowlevel_server.run(
                AnswerMalformed(read_stream, write_stream),
                write_stream,
                self._lowlevel_server.create_initialization_options(),
            )


def create_app(
    settings: Settings,
    shared: Services | None = None,
    tokens: dict[str, Principal] | None = None,
    client: dict[str, Any] | None = None,
) -> MCPServer:
    """An MCPServer whose lifespan owns an engine, or borrows `shared` (tests share one engine), or is one
    front-end of a parent's engine core (`client`, see front_ends). With `tokens` (token → principal) or OAuth
    settings, Streamable HTTP requires a bearer token."""
    runtime = Runtime(start_timeout_s=settings.engine_start_timeout_s, settings=settings)
    verifier = auth.verifier(settings, tokens)
    task_extension = Tasks(runtime)
    bus = InMemorySubscriptionBus()
    notifications = Notifications(runtime, bus, settings.progress_interval_s)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Runtime]:
        if shared is not None:
            runtime.set(EngineState.READY, shared)
            try:
                async with notifications.running():
                    yield runtime
            finally:
                await task_extension.close()
            return
        stop = asyncio.Event()
        engine = asyncio.create_task(_serve_engine(settings, runtime, stop, client))
        try:
            async with notifications.running():
                yield runtime
        finally:
            await task_extension.close()
            stop.set()
            await engine

    mcp = Server(
        "mcp-llm",
        title="mcp-llm: vLLM serving for agents",
        instructions=INSTRUCTIONS,
        version=package_version(),
        lifespan=dashboard.with_history(lifespan, runtime),
        log_level=settings.log_level,
        tools=all_tools(),
        token_verifier=verifier,
        auth=auth.auth_settings(settings) if verifier else None,
        extensions=[task_extension, dashboard.extension()],
        subscriptions=bus,
        request_state_security=RequestStateSecurity(keys=settings.request_state_keys)
        if settings.request_state_keys
        else None,
    )
    declare_tasks(mcp._lowlevel_server)  # capabilities.tasks at 2025-11-25
    notifications.install(mcp._lowlevel_server)  # resources/subscribe, subscriptions/listen URIs, logging/setLevel
    resources.register(mcp, runtime)
    prompts.register(mcp, prompts.load_prompts(settings.prompts_dir or prompts.PROMPTS_DIR))
    http.register(mcp, runtime)
    dashboard.register_route(mcp, verifier)
    return mcp
