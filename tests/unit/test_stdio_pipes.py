"""The loop-driven stdio wire: lines both ways over real pipes, stray output kept off the wire, long lines whole,
the descriptors restored (and blocking again) afterwards, and the SDK's transport kept for what is not a pipe."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

ECHO = textwrap.dedent(
    """
    import asyncio, os, sys
    from mcp_llm.server.stdio_pipes import loop_stdio

    async def main():
        async with loop_stdio() as wire:
            if wire is None:
                print("fallback", file=sys.stderr)
                return
            reader, writer = wire
            print("stray print", flush=True)
            os.write(1, b"stray write\\n")
            async for line in reader:
                if line == "big\\n":  # a reply larger than the pipe holds, then straight out of the wire
                    await writer.write("b" * 100_000 + "\\n")
                    await writer.flush()
                    break
                await writer.write(f"{len(line)}:{line[:5]}\\n")
                await writer.flush()
        print("restored", os.get_blocking(0), os.get_blocking(1), flush=True)

    if os.environ.get("LOOP") == "uvloop":  # the server's loop (process.loop_options)
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
    """
)


def run(stdin: object, data: bytes | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ECHO], input=data, stdin=stdin, capture_output=True, timeout=60, check=True
    )


def test_lines_cross_the_pipes_and_stray_output_goes_to_stderr() -> None:
    long_line = "x" * (1 << 20)
    done = run(None, f"hello\n{long_line}\nlast".encode())
    lines = done.stdout.decode().splitlines()
    assert lines[:3] == ["6:hello", f"{len(long_line) + 1}:xxxxx", "4:last"]
    assert lines[3] == "restored True True", lines  # after the wire: fd 1 is the pipe again, both blocking
    assert "stray print" in done.stderr.decode() and "stray write" in done.stderr.decode()
    assert "stray" not in done.stdout.decode()


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    done = run(None, b"ok\xff\n")
    assert done.stdout.decode().splitlines()[0] == "4:ok\ufffd"  # "ok", the replacement character, the newline


def test_a_file_on_stdin_keeps_the_sdk_transport(tmp_path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("hello\n")
    with source.open("rb") as f:
        done = run(f, None)
    assert "fallback" in done.stderr.decode()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_last_reply_reaches_a_slow_host_whole(loop: str) -> None:
    """A reply larger than the pipe's buffer, written just before the server leaves the wire, is not cut off."""
    child = subprocess.Popen(
        [sys.executable, "-c", ECHO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"LOOP": loop},
    )
    child.stdin.write(b"big\n")
    child.stdin.close()
    time.sleep(1.0)  # the host reads late: the server's transport holds what the pipe cannot
    out = child.stdout.read()
    child.wait(60)
    lines = out.decode().splitlines()
    assert child.returncode == 0 and lines[0] == "b" * 100_000 and lines[1] == "restored True True", lines[1:]


def test_one_socket_both_ways_keeps_the_sdk_transport() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        done = subprocess.run(
            [sys.executable, "-c", ECHO],
            stdin=theirs,
            stdout=theirs,
            capture_output=False,
            stderr=subprocess.PIPE,
            timeout=60,
            check=True,
        )
    assert "fallback" in done.stderr.decode()


def test_a_non_blocking_wire_is_handed_back_non_blocking() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.close(write_end)  # EOF at once
    child = subprocess.run([sys.executable, "-c", ECHO], stdin=read_end, capture_output=True, timeout=60, check=True)
    os.close(read_end)
    assert child.stdout.decode().splitlines()[-1] == "restored False True"
