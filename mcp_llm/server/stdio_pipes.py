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
import fcntl
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

LINE_LIMIT = 1 << 30  # the SDK's transport has no limit on a line; a JSON-RPC line is bounded by memory only
CLOSE_TIMEOUT_S = 5.0  # at exit, how long the replies still buffered may take to reach a slow host


def _served_by_the_loop() -> bool:
    """stdin and stdout are pipes or sockets, and not one socket both ways (inetd, socat: a write-pipe transport
    watches its descriptor for readability, so requests arriving on it would close the write side)."""
    try:
        wire = os.fstat(0), os.fstat(1)
    except OSError:
        return False
    if (wire[0].st_dev, wire[0].st_ino) == (wire[1].st_dev, wire[1].st_ino):
        return False
    return all(stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) for st in wire)


def _dup_high(fd: int) -> int:
    """A close-on-exec duplicate above the standard descriptors (never 0-2, even if one of them is closed)."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _divert() -> None:
    """fd 0 reads the null device, fd 1 writes to stderr (the null device if there is no stderr)."""
    null_in = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_in, 0)
    os.close(null_in)
    try:
        os.fstat(2)
        os.dup2(2, 1)
    except OSError:
        null_out = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null_out, 1)
        os.close(null_out)


class _WireOut(asyncio.streams.FlowControlMixin):
    """The write side's protocol; `closed` is set once the transport has written what it held and closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.closed.set()


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
    """The wire as (reader, writer) on the running loop, or None when stdin/stdout are not separate pipes or
    sockets. At exit the replies still buffered are written (up to CLOSE_TIMEOUT_S) before fds 0 and 1 are put back
    as they were (blocking or not). The transports own the wire's duplicates and close them."""
    if not _served_by_the_loop():
        yield None
        return
    sys.stdout.flush()
    blocking = os.get_blocking(0), os.get_blocking(1)
    saved = _dup_high(0), _dup_high(1)
    wire_in, wire_out = os.fdopen(_dup_high(0), "rb", buffering=0), os.fdopen(_dup_high(1), "wb", buffering=0)
    read_transport: asyncio.BaseTransport | None = None
    write_transport: asyncio.WriteTransport | None = None
    protocol = _WireOut()
    try:
        _divert()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), wire_in)
        write_transport, _ = await loop.connect_write_pipe(lambda: protocol, wire_out)
        yield LineReader(reader), LineWriter(asyncio.StreamWriter(write_transport, protocol, None, loop))
    finally:
        with anyio.CancelScope(shield=True):  # also when the server is being cancelled: the last replies go out
            if read_transport is not None:
                read_transport.close()
            else:
                wire_in.close()
            if write_transport is not None:
                write_transport.close()  # writes what it holds, then closes
                with anyio.move_on_after(CLOSE_TIMEOUT_S):
                    await protocol.closed.wait()
                if not protocol.closed.is_set():
                    write_transport.abort()
            else:
                wire_out.close()
        for fd, copy, was_blocking in zip((0, 1), saved, blocking, strict=True):
            os.dup2(copy, fd)
            os.set_blocking(fd, was_blocking)
            os.close(copy)
