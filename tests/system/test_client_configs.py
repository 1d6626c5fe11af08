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


def cursor_entry() -> tuple[str, list[str], dict[str, str]]:
    config = json.loads((REPO / ".cursor" / "mcp.json").read_text())
    return expanded(config["mcpServers"]["mcp-llm"], lambda v: v.replace("${workspaceFolder}", str(REPO)))


def claude_desktop_entry() -> tuple[str, list[str], dict[str, str]]:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("**Claude Desktop**") :]
    snippet = re.search(r"```json\n(.*?)\n```", section, re.DOTALL).group(1)
    entry = json.loads(snippet)["mcpServers"]["mcp-llm"]
    return expanded(entry, lambda v: v.replace("/absolute/path/to/mcp-llm", str(REPO)))


def expanded(entry: dict, expand: Callable[[str], str]) -> tuple[str, list[str], dict[str, str]]:
    """The entry's command, args and env after the client's own expansion."""
    command, args = expand(entry["command"]), [expand(a) for a in entry["args"]]
    assert command == str(REPO / ".venv" / "bin" / "python") and args == [str(REPO / "server.py")]
    return command, args, {k: expand(v) for k, v in entry.get("env", {}).items()}


async def test_cursor_and_claude_desktop_configs_start_a_server_that_generates(tmp_path) -> None:
    """Both entries name the same command (checked), so one start proves both; a difference starts each."""
    entries = [cursor_entry(), claude_desktop_entry()]
    distinct = [e for i, e in enumerate(entries) if e not in entries[:i]]
    for command, args, env in distinct:
        params = StdioServerParameters(command=command, args=args, env=server_env(tmp_path, **env))
        async with Client(params, read_timeout_seconds=240) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            answer = await client.call_tool(
                "generate", {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}
            )
            config = json.loads((await client.read_resource("model://config")).contents[0].text)
        assert {"generate", "batch", "solve", "embed"} <= names
        assert not answer.is_error, answer.content
        assert answer.structured_content["text"].strip() and answer.structured_content["usage"]["completion_tokens"]
        assert config["model"] == "SmolLM2-135M-Instruct" and config["state"] == "ready" and config["vllm_version"]
