"""Run `solve` through a real MCP client whose sampling callback is played by the served model itself.

Prints the tool's trace as JSON. With a real host (Claude Desktop, Cursor) the host's model answers
the sampling requests instead; here the engine answers, JSON-constrained to the action format.
Usage: .venv/bin/python examples/solve_trace.py "your task"
"""

from __future__ import annotations

import json
import sys

import anyio
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from mcp_llm.core.services import open_services
from mcp_llm.schemas import ChatMessage, SamplingOptions
from mcp_llm.server.app import create_app
from mcp_llm.server.tools.flows import ACTION_SCHEMA
from mcp_llm.settings import Settings


async def main(task: str) -> None:
    settings = Settings()
    async with open_services(settings) as services:

        async def host(context, params: CreateMessageRequestParams) -> CreateMessageResult:
            chat = [ChatMessage(role="system", content=params.system_prompt)]
            chat += [ChatMessage(role=m.role, content=m.content.text) for m in params.messages]
            options = SamplingOptions(max_tokens=200, temperature=0, json_schema=ACTION_SCHEMA)
            done = await services.engine.generate(services.engine.tokenize_chat(chat), options, f"host-{len(chat)}")
            return CreateMessageResult(
                role="assistant",
                content=TextContent(type="text", text=done.text),
                model="SmolLM2-135M-Instruct (as host)",
            )

        async with Client(create_app(settings, shared=services), sampling_callback=host) as client:
            result = await client.call_tool("solve", {"task": task, "max_steps": 3})
    print(json.dumps(result.structured_content, indent=2))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "How many tokens does the text 'hello world' take?")
