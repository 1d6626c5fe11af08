"""Startup latency over stdio, as a desktop client sees it: spawn `python server.py`, then time the `initialize`
reply, the `tools/list` reply and the first `generate` answer (sent right after the handshake, with a progress
token: the keep-alive notifications it gets while the engine starts are counted too). Each run gets a fresh
data dir (a restart); models come from the shared model store.

    python bench/startup.py [--runs 3] [--handshake-only] [--out startup.json] [--timeout 600] [--server PATH]
                            [-- server flags]

A benchmark, not a test: figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GENERATE = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "temperature": 0,
    "max_tokens": 16,
}
COLUMNS = ("initialize_s", "tools_list_s", "first_progress_s", "generate_s")


def _models_dir() -> str:
    """The shared model store (as the tests use it), so a fresh data dir does not prepare the model again."""
    if "MCP_LLM_MODELS_DIR" in os.environ:
        return os.environ["MCP_LLM_MODELS_DIR"]
    from mcp_llm.settings import Settings

    return str(Settings().model_store)


class Stdio:
    """JSON-RPC lines over a subprocess's pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server closed stdout (exit code {self.proc.returncode})")
        return json.loads(line)

    async def request(self, request_id: int, method: str, params: dict[str, Any], seen: list[dict] | None = None):
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = await self.receive()
            if message.get("id") == request_id and "method" not in message:
                return message
            if seen is not None:
                seen.append({"t": time.perf_counter(), **message})


async def one_run(cmd: list[str], env: dict[str, str], timeout_s: float, handshake_only: bool) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="mcp-llm-startup-") as data_dir,
        open(Path(data_dir) / "server.log", "w") as err,
    ):
        env = env | {"MCP_LLM_DATA_DIR": data_dir}
        started = time.perf_counter()
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=pipe, stdout=pipe, stderr=err, env=env, cwd=Path(cmd[1]).parent, limit=1 << 24
        )
        io = Stdio(proc)
        row: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout_s):
                init = await io.request(
                    1,
                    "initialize",
                    {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "bench-startup", "version": "0"},
                    },
                )
                row["initialize_s"] = time.perf_counter() - started
                assert init["result"]["serverInfo"]["name"] == "mcp-llm", init
                await io.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                tools = await io.request(2, "tools/list", {})
                row["tools_list_s"] = time.perf_counter() - started
                row["tools"] = len(tools["result"]["tools"])
                if handshake_only:
                    return row
                seen: list[dict] = []
                params = {"name": "generate", "arguments": GENERATE, "_meta": {"progressToken": "startup"}}
                answer = await io.request(3, "tools/call", params, seen)
                row["generate_s"] = time.perf_counter() - started
                progress = [m for m in seen if m.get("method") == "notifications/progress"]
                row["progress_notifications"] = len(progress)
                row["first_progress_s"] = progress[0]["t"] - started if progress else None
                row["last_progress_message"] = progress[-1]["params"].get("message") if progress else None
                result = answer.get("result", {})
                row["answer"] = (result.get("structuredContent") or {}).get("text") or result
        finally:
            if proc.stdin is not None:
                proc.stdin.close()  # the client leaves: the server drains and stops its engine
            try:
                await asyncio.wait_for(proc.wait(), 120)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if "generate_s" not in row and not handshake_only:
            err.flush()
            row["stderr_tail"] = (Path(data_dir) / "server.log").read_text(errors="replace")[-2000:]
        return row


def _fmt(value: Any) -> str:
    return f"{value:8.2f}" if isinstance(value, float) else f"{'-':>8}"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'run':>4} " + " ".join(f"{c.removesuffix('_s'):>16}" for c in COLUMNS) + "  progress msgs")
    for index, row in enumerate(rows, 1):
        cells = " ".join(f"{_fmt(row.get(c)):>16}" for c in COLUMNS)
        print(f"{index:>4} {cells}  {row.get('progress_notifications', '-')}")
    summary = summarize(rows)
    print(f"{'med':>4} " + " ".join(f"{_fmt(summary.get(c, {}).get('median')):>16}" for c in COLUMNS))
    if rows and rows[-1].get("last_progress_message"):
        print(f"last keep-alive message: {rows[-1]['last_progress_message']!r}")


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for column in COLUMNS:
        values = [r[column] for r in rows if isinstance(r.get(column), float)]
        if values:
            out[column] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(args.server), *args.server_flags]
    env = dict(os.environ) | {"MCP_LLM_MODELS_DIR": _models_dir(), "PYTHONUNBUFFERED": "1"}
    rows = []
    for index in range(args.runs):
        row = await one_run(cmd, env, args.timeout, args.handshake_only)
        print(f"run {index + 1}/{args.runs}: " + ", ".join(f"{c} {row.get(c)}" for c in COLUMNS), file=sys.stderr)
        rows.append(row)
    return {
        "benchmark": "startup over stdio",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": cmd,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": rows,
        "summary": summarize(rows),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="Server starts to measure (default 3).")
    parser.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here.")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds one run may take (default 600).")
    parser.add_argument(
        "--server", type=Path, default=REPO / "server.py", help="The server.py to start (another checkout)."
    )
    parser.add_argument(
        "--handshake-only", action="store_true", help="Stop after tools/list (the client leaves; no generate)."
    )
    parser.add_argument("server_flags", nargs="*", help="Extra server flags, after `--`.")
    args = parser.parse_args(argv)
    report = asyncio.run(amain(args))
    print_table(report["runs"])
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
