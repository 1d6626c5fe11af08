"""Sampling flows from the host's side: the two protocol eras and a host whose model answers from a script."""

from __future__ import annotations

from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, ErrorData, TextContent

ERAS = ["legacy", "auto"]  # legacy negotiates 2025-11-25; auto adopts 2026-07-28 in-process


class ScriptedHost:
    """A host whose model answers from a script; it records what it was asked."""

    def __init__(self, *replies: str) -> None:
        self.replies, self.requests = list(replies), []

    async def __call__(self, context, params: CreateMessageRequestParams) -> CreateMessageResult | ErrorData:
        self.requests.append(params)
        reply = self.replies.pop(0) if self.replies else '{"thought": "done", "action": "final", "input": {}}'
        if reply == "DECLINE":
            return ErrorData(code=-1, message="User rejected sampling request")
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=reply), model="scripted")


async def run(app, host, tool: str, arguments: dict, era: str):
    async with Client(app, sampling_callback=host, mode=era, input_required_max_rounds=50) as client:
        version = client.protocol_version
        result = await client.call_tool(tool, arguments)
    return result, version
