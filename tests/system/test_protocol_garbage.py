"""Protocol garbage over stdio and Streamable HTTP: each gets a protocol error or a closed connection, never a
crash or a stuck worker, and a normal call works afterwards. The stdio guard on its own is
tests/unit/test_stdio_guard.py."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp_types import INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR

from tests.support.fuzzing import CAPITAL, PROTOCOL, RawHttp, RawStdio, encode, initialize_params
from tests.support.servers import HttpServer

pytestmark = pytest.mark.anyio

MB = 1 << 20


# ---- stdio --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def stdio(wire_stdio: RawStdio) -> RawStdio:
    """The session's shared stdio server (conftest)."""
    return wire_stdio


def line_reply(server: RawStdio, line: bytes, request_id: Any = None, timeout: float = 60) -> dict:
    """Write one raw line; its reply (matched by `request_id`, or the next reply with id null)."""
    before = len(server.unmatched)
    if request_id is not None:
        waiter = server.send_raw(line, request_id)
        return waiter.get(timeout=timeout)
    server.write(line)
    deadline = time.monotonic() + timeout
    while len(server.unmatched) == before:
        assert time.monotonic() < deadline, f"no reply to {line[:80]!r}"
        assert server.alive(), "server exited"
        time.sleep(0.02)
    return server.unmatched[before]


def still_answers(server: RawStdio) -> None:
    reply = server.request("tools/call", {"name": "count_tokens", "arguments": {"prompt": "hello world"}})
    assert reply["result"]["structuredContent"]["tokens"] > 0


STDIO_GARBAGE: list[tuple[str, bytes, Any, int]] = [
    ("non-JSON", b"this is not json", None, PARSE_ERROR),
    ("empty object", b"{}", None, INVALID_REQUEST),
    ("JSON array", b"[1, 2, 3]", None, INVALID_REQUEST),
    ("JSON number", b"42", None, INVALID_REQUEST),
    ("invalid UTF-8 in the method", b'{"jsonrpc": "2.0", "id": 100, "method": "\xff\xfe"}', 100, METHOD_NOT_FOUND),
    ("missing jsonrpc", b'{"id": 101, "method": "tools/list"}', 101, INVALID_REQUEST),
    ("jsonrpc 1.0", b'{"jsonrpc": "1.0", "id": 102, "method": "tools/list"}', 102, INVALID_REQUEST),
    ("method a number", b'{"jsonrpc": "2.0", "id": 103, "method": 5}', 103, INVALID_REQUEST),
    ("params a string", b'{"jsonrpc": "2.0", "id": 104, "method": "tools/call", "params": "x"}', 104, INVALID_REQUEST),
    ("unknown method", b'{"jsonrpc": "2.0", "id": 105, "method": "no/such/method"}', 105, METHOD_NOT_FOUND),
    (
        "nested 100k deep",
        b'{"jsonrpc": "2.0", "id": 106, "method": "tools/list", "params": ' + b"[" * 100_000,
        None,
        None,
    ),
    (
        "nested 300 deep",
        b'{"jsonrpc": "2.0", "id": 107, "method": "tools/list", "params": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}",
        107,
        INVALID_REQUEST,
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("what", "line", "request_id", "code"), STDIO_GARBAGE, ids=[g[0] for g in STDIO_GARBAGE])
def test_stdio_garbage_gets_an_error_reply(stdio: RawStdio, what: str, line: bytes, request_id: Any, code: Any) -> None:
    reply = line_reply(stdio, line + b"\n", request_id)
    assert "error" in reply, reply
    if code is not None:
        assert reply["error"]["code"] == code, reply
    assert reply["id"] == request_id
    still_answers(stdio)


@pytest.mark.slow
def test_stdio_oversized_messages(stdio: RawStdio) -> None:
    """A 20 MB line of garbage and a 20 MB request: each answered, the session goes on."""
    reply = line_reply(stdio, b"x" * (20 * MB) + b"\n")
    assert reply["error"]["code"] == PARSE_ERROR
    big = {"name": "count_tokens", "arguments": {"prompt": "y" * (20 * MB), "zz_not_an_argument": 1}}
    reply = stdio.request("tools/call", big, timeout=120)
    assert reply["result"]["isError"] and "zz_not_an_argument" in reply["result"]["content"][0]["text"]
    still_answers(stdio)


@pytest.mark.slow
def test_stdio_nasty_strings_in_a_valid_call(stdio: RawStdio) -> None:
    """NUL, NaN and infinities reach the tools and are answered (a result or a tool error); a lone surrogate
    escape (no Unicode text) gets an Invalid Request error naming the request."""
    for args in (
        {"prompt": "\x00\x00", "max_tokens": 2, "temperature": 0},
        {"prompt": "x", "max_tokens": 2, "temperature": float("nan")},
        {"prompt": "x", "max_tokens": 2, "top_p": float("inf")},
        {"prompt": "x", "max_tokens": 2, "seed": -float("inf")},
    ):
        reply = stdio.request("tools/call", {"name": "generate", "arguments": args})
        assert "result" in reply, reply
        if reply["result"].get("isError"):
            assert reply["result"]["content"][0]["text"].strip()
    for args in ({"prompt": "\ud800 lone surrogate"}, {"messages": [{"role": "user", "content": "\udfff"}]}):
        reply = stdio.request("tools/call", {"name": "generate", "arguments": args})
        assert reply["error"]["code"] == INVALID_REQUEST, reply


@pytest.mark.slow
def test_stdio_after_the_garbage(stdio: RawStdio) -> None:
    """Still up, still right, and nothing but JSON-RPC went to stdout."""
    reply = stdio.request("tools/call", {"name": "generate", "arguments": CAPITAL})
    assert "Paris" in reply["result"]["structuredContent"]["text"]
    assert stdio.alive() and not stdio.stray, stdio.stray[:3]


# ---- HTTP ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def http(wire_http: HttpServer) -> HttpServer:
    """The session's shared HTTP server (conftest)."""
    return wire_http


@pytest.fixture(scope="module")
def session(http: HttpServer) -> Iterator[RawHttp]:
    """A raw session, for garbage that needs a valid session id."""
    client = RawHttp(http.url)
    client.initialize()
    yield client
    client.close()


async def sdk_call(http: HttpServer) -> None:
    """A normal client's call works."""
    async with Client(http.url, read_timeout_seconds=120) as client:
        result = await client.call_tool("count_tokens", {"prompt": "hello world"})
        assert result.structured_content["tokens"] > 0


def headers(**extra: str) -> dict[str, str]:
    return {"accept": RawHttp.ACCEPT, "content-type": "application/json", "mcp-protocol-version": PROTOCOL} | {
        k.replace("_", "-"): v for k, v in extra.items()
    }


def initialize_body() -> bytes:
    return encode({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params("garbage")})


def list_body(request_id: int = 2) -> bytes:
    return encode({"jsonrpc": "2.0", "id": request_id, "method": "tools/list"})


HTTP_GARBAGE: list[tuple[str, bytes, dict[str, str]]] = [
    ("non-JSON body", b"this is not json", headers()),
    ("empty body", b"", headers()),
    ("JSON array", b"[1, 2, 3]", headers()),
    ("JSON-RPC without method", b'{"jsonrpc": "2.0", "id": 1}', headers()),
    ("jsonrpc 1.0", b'{"jsonrpc": "1.0", "id": 1, "method": "initialize"}', headers()),
    ("invalid UTF-8", b'{"jsonrpc": "2.0", "id": "\xff", "method": "initialize"}', headers()),
    ("nested 100k deep", b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": ' + b"[" * 100_000, headers()),
    ("text/plain", initialize_body(), headers(content_type="text/plain")),
    ("no content type", initialize_body(), {"accept": RawHttp.ACCEPT}),
    ("accepts only HTML", initialize_body(), headers(accept="text/html")),
    ("no session id", list_body(), headers()),
    ("unknown session id", list_body(), headers(mcp_session_id="0" * 32)),
    ("garbage session id", list_body(), headers(mcp_session_id="../../\x7f")),
    ("bad protocol version", list_body(), headers(mcp_protocol_version="1999-01-01")),
]


@pytest.mark.slow
@pytest.mark.parametrize(("what", "body", "hdrs"), HTTP_GARBAGE, ids=[g[0] for g in HTTP_GARBAGE])
async def test_http_garbage_gets_a_4xx(http: HttpServer, what: str, body: bytes, hdrs: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(http.url, content=body, headers=hdrs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    await sdk_call(http)


@pytest.mark.slow
async def test_http_garbage_inside_a_session(http: HttpServer, session: RawHttp) -> None:
    """Invalid messages with a valid session id: protocol errors, and the session still works."""
    for body, code in (
        (b'{"jsonrpc": "2.0", "id": 5, "method": "no/such/method"}', METHOD_NOT_FOUND),
        (b'{"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": "x"}', None),
        (b"not json", None),
    ):
        response = session.post(body)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if code is not None:
            assert json.loads(response.text.split("data:", 1)[-1])["error"]["code"] == code
    assert session.request("tools/list")["result"]["tools"]
    for method in ("GET", "DELETE"):  # with no session id
        response = session.http.request(method, http.url, headers={"accept": RawHttp.ACCEPT})
        assert 400 <= response.status_code < 500, (method, response.status_code)
    await sdk_call(http)


@pytest.mark.slow
async def test_http_huge_bodies_get_413(http: HttpServer) -> None:
    """Over max_request_body_bytes (16 MiB): 413, whether Content-Length says so or the body is chunked."""
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"x": "' + b"a" * (17 * MB) + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), MB):
            yield big[start : start + MB]

    async with httpx.AsyncClient(timeout=120) as client:
        sized = await client.post(http.url, content=big, headers=headers())
        chunked = await client.post(http.url, content=chunks(), headers=headers())
    assert sized.status_code == 413, sized.text[:200]
    assert chunked.status_code == 413, chunked.text[:200]
    await sdk_call(http)


def half_request(port: int, body: bool) -> socket.socket:
    """A connection that sends half a request and then holds: headers cut off, or a body shorter than promised."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if body:
        sock.sendall(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n" + initialize_body()[:40]
        )
    else:
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    return sock


@pytest.mark.slow
async def test_http_slow_loris_does_not_block_others(http: HttpServer) -> None:
    """100 connections each holding half a request: other clients are served meanwhile, and after the slow
    clients give up the server is up and serves."""
    socks = [half_request(http.port, body=i % 2 == 1) for i in range(100)]
    try:
        started = time.monotonic()
        await sdk_call(http)
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.get(f"{http.base}/health")).status_code == 200
        assert time.monotonic() - started < 60
        assert http.proc.poll() is None
    finally:
        for sock in socks:
            sock.close()
    async with Client(http.url, read_timeout_seconds=120) as client:
        result = await client.call_tool("generate", CAPITAL)
        assert "Paris" in result.structured_content["text"]
    assert http.proc.poll() is None
    log = http.log.read_text()
    assert "Exception in ASGI application" not in log, log[-3000:]
