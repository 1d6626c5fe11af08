"""The loop-driven stdio wire: lines both ways over real pipes, stray output kept off the wire, long lines whole,
the descriptors restored (and blocking again) afterwards, and the SDK's transport kept for what is not a pipe."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
                await writer.write(f"{len(line)}:{line[:5]}\\n")
                await writer.flush()
        print("restored", os.get_blocking(0), os.get_blocking(1), flush=True)

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
