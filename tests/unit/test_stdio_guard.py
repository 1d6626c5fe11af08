"""The stdio guard on its own (no server): a line the SDK's stdio transport cannot read gets a JSON-RPC error
reply, with the request's id when the line has one. Over a real server: tests/system/test_protocol_garbage.py."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_types import INVALID_REQUEST, PARSE_ERROR
from pydantic import ValidationError

from mcp_llm.server.stdio_guard import error_reply


def parse_failure(line: str) -> Exception:
    """What the SDK's stdio transport hands on for a line it cannot read."""
    import mcp_types

    try:
        mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        return exc
    raise AssertionError(f"{line!r} parsed")


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        ("not json", PARSE_ERROR, None),
        (
            '{"jsonrpc": "2.0", "id": 7, "method": "x", "params": {"a": ' + "[" * 300 + "]" * 300 + "}}",
            INVALID_REQUEST,
            7,
        ),
        ('{"jsonrpc": "1.0", "id": "r1", "method": "tools/list"}', INVALID_REQUEST, "r1"),
        ('{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": "text"}', INVALID_REQUEST, 9),
        ("[1, 2]", INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "id": true, "method": 5}', INVALID_REQUEST, None),
    ],
)
def test_error_reply_names_the_request_when_it_can(line: str, code: int, request_id: Any) -> None:
    reply = error_reply(parse_failure(line))
    assert (reply.error.code, reply.id) == (code, request_id)
    assert reply.error.message
