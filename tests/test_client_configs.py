"""The client configuration we ship (.cursor/mcp.json) parses and starts a server that lists our tools."""

from __future__ import annotations

import json

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import REPO, server_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_cursor_config_starts_the_server(tmp_path) -> None:
    config = json.loads((REPO / ".cursor" / "mcp.json").read_text())
    entry = config["mcpServers"]["mcp-llm"]
    expand = lambda value: value.replace("${workspaceFolder}", str(REPO))  # noqa: E731 - what Cursor does
    command, args = expand(entry["command"]), [expand(a) for a in entry["args"]]
    assert command.endswith(".venv/bin/python") and args == [str(REPO / "server.py")]
    params = StdioServerParameters(command=command, args=args, env=server_env(tmp_path, **entry.get("env", {})))
    async with Client(params, read_timeout_seconds=240) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"generate", "batch", "solve"} <= names
