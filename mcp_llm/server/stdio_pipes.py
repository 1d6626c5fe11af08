"""Stdio read and written by the event loop itself, without the SDK's worker-thread hops.

The SDK's stdio transport reads and writes through `anyio.wrap_file`: every line read, write and flush is a
round trip to a worker thread (three per call), which costs a busy server tenths of a millisecond per call.
When stdin and stdout are pipes or sockets (what MCP hosts hand a server) this serves the same wire through
the loop's own non-blocking pipe transports instead, with the SDK's safeguard kept: while serving, fd 0
reads the null device and fd 1 writes to stderr, so stray output of vLLM or a library never reaches the wire.
Anything else (a terminal, a file) keeps the SDK's own transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

LINE_LIMIT = 1 << 30  # the SDK's transport has no limit on a line; a JSON-RPC line is bounded by memory only


def _pipe_or_socket(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class LineReader:
    """Lines of the wire as text (invalid UTF-8 replaced, as the SDK's transport does)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class LineWriter:
    """Text written to the wire; `flush` waits while the pipe's buffer is over its high-water mark."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@asynccontextmanager
async def loop_stdio() -> AsyncIterator[tuple[LineReader, LineWriter] | None]:
    """The wire as (reader, writer) on the running loop, or None when stdin/stdout are not pipes or sockets."""
    if not (_pipe_or_socket(0) and _pipe_or_socket(1)):
        yield None
        return
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    loop = asyncio.get_running_loop()
    in_file, out_file = os.fdopen(wire_in, "rb", buffering=0), os.fdopen(wire_out, "wb", buffering=0)
    transports: list[asyncio.BaseTransport] = []
    try:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), in_file)
        transports.append(read_transport)
        write_transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out_file)
        transports.append(write_transport)
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        yield LineReader(reader), LineWriter(writer)
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()  # the last replies reach the host before the process goes
    finally:
        for transport in transports:
            transport.close()  # closes its pipe file too
        for f in (in_file, out_file):
            with contextlib.suppress(OSError):
                f.close()
        for fd, saved in ((0, saved_in), (1, saved_out)):
            os.dup2(saved, fd)
            os.set_blocking(fd, True)  # the transports made the shared pipe non-blocking
            os.close(saved)
