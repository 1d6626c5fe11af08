"""The client configurations we ship or document parse, and the command each names starts a server that
lists our tools and answers `generate` (the engine started, not only the tool list, which answers before it):
`.cursor/mcp.json` (Cursor) and the README's `claude_desktop_config.json` snippet."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import REPO, server_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def check_entry(entry: dict, expand: Callable[[str], str], tmp_path) -> None:
    """The server entry's command and args (after the client's own expansion) start our server, which
    generates."""
    command, args = expand(entry["command"]), [expand(a) for a in entry["args"]]
    assert command == str(REPO / ".venv" / "bin" / "python") and args == [str(REPO / "server.py")]
    params = StdioServerParameters(command=command, args=args, env=server_env(tmp_path, **entry.get("env", {})))
    async with Client(params, read_timeout_seconds=240) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        answer = await client.call_tool(
            "generate", {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}
        )
    assert {"generate", "batch", "solve", "embed"} <= names
    assert not answer.is_error, answer.content
    assert answer.structured_content["text"].strip() and answer.structured_content["usage"]["completion_tokens"] > 0


async def test_cursor_config_starts_the_server(tmp_path) -> None:
    config = json.loads((REPO / ".cursor" / "mcp.json").read_text())
    await check_entry(config["mcpServers"]["mcp-llm"], lambda v: v.replace("${workspaceFolder}", str(REPO)), tmp_path)


async def test_readme_claude_desktop_snippet_starts_the_server(tmp_path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("**Claude Desktop**") :]
    snippet = re.search(r"```json\n(.*?)\n```", section, re.DOTALL).group(1)
    entry = json.loads(snippet)["mcpServers"]["mcp-llm"]
    await check_entry(entry, lambda v: v.replace("/absolute/path/to/mcp-llm", str(REPO)), tmp_path)
