"""Stdio: a line that is not a valid JSON-RPC message gets a JSON-RPC error reply, as JSON-RPC 2.0 asks.

The SDK's stdio transport drops such a line silently (it logs at debug level), so a client whose request
was malformed (too deeply nested for the parser, a wrong `jsonrpc`, `params` not an object) waits forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

log = logging.getLogger(__name__)


def error_reply(exc: Exception) -> JSONRPCError:
    """The reply to a line the transport could not read: Parse error for what is not JSON, Invalid Request for
    JSON that is not a valid message; the request's id when it can be found, else null."""
    errors = exc.errors() if isinstance(exc, ValidationError) else []
    raw = next((e["input"] for e in errors if e["type"] == "json_invalid"), None)
    message: Any = next((e["input"] for e in errors if isinstance(e.get("input"), dict) and "id" in e["input"]), None)
    code, text = INVALID_REQUEST, "Invalid Request: not a valid JSON-RPC 2.0 message"
    if isinstance(raw, str):
        try:
            message = json.loads(raw)  # our parser refused it; Python's may still read it (e.g. deep nesting)
            text = "Invalid Request: the message is nested too deeply or is not strict JSON"
        except (ValueError, RecursionError):
            code, text = PARSE_ERROR, "Parse error: the line is not JSON"
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        request_id = None
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=text))


class AnswerMalformed:
    """The stdio read stream, passing every item on; for each unreadable line it first writes an error reply."""

    def __init__(self, inner: Any, write_stream: Any) -> None:
        self._inner = inner
        self._write = write_stream

    def __getattr__(self, name: str) -> Any:  # last_context, aclose, close, receive: the inner stream's
        return getattr(self._inner, name)

    def __aiter__(self) -> AnswerMalformed:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._inner.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        if isinstance(item, Exception):
            reply = error_reply(item)
            log.info("malformed stdio message answered with %s (id %r)", reply.error.code, reply.id)
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await self._write.send(SessionMessage(reply))
        return item

    async def __aenter__(self) -> AnswerMalformed:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._inner.__aexit__(*exc_info)
