"""Every argument and resource URI that names a file or folder, tried with traversal: `../`, absolute paths,
URL-encoded and NUL variants, a symlink out of the data dir. Each is refused with a tool (or resource)
error, and nothing outside the server's stores is read, written or deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio
ESCAPES = [
    "../outside",
    "../../../../etc/passwd",
    "/etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc",
    "a/../../outside",
    "..\\..\\outside",
    "ok\x00/../../etc",
    "~root",
]
LINK = "escape-link"  # a symlink in the data dir to a folder outside: an escape only where a path is taken
# (tool, arguments with {} where the hostile value goes); none of them may do anything but refuse
PATHS = [("import_adapter", {"name": "fine", "path": "{}"})]
CALLS = [
    *PATHS,
    ("import_adapter", {"name": "{}", "path": "imports"}),
    ("delete_adapter", {"name": "{}"}),
    ("merge_adapters", {"name": "{}", "sources": ["a", "b"]}),
    ("merge_adapters", {"name": "merged", "sources": ["{}", "b"]}),
    ("load_model", {"name": "{}", "confirm": True}),
    ("quantize", {"scheme": "W8A8", "model": "{}"}),
    ("quantize", {"scheme": "W8A8", "name": "{}"}),
    ("generate", {"prompt": "hi", "max_tokens": 1, "adapter": "{}"}),
    ("benchmark", {"variants": [{"model": "{}"}], "confirm": True, "workload": {"requests": 1}}),
]
RESOURCES = ["models://{}", "adapters://{}", "jobs://{}", "benchmarks://{}", "jobs://{}/results/1"]


@pytest.fixture(scope="module")
def planted(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file outside the data dir, and a symlink inside it that points there."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("do not touch")
    link = settings.data_dir / LINK
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    return outside


def filled(arguments: dict, value: str) -> dict:
    def fill(v):
        if v == "{}":
            return value
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    return fill(arguments)


@pytest.mark.parametrize(("tool", "arguments"), CALLS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CALLS)])
async def test_path_arguments_refuse_every_escape(client: Client, planted: Path, tool: str, arguments: dict) -> None:
    for value in ESCAPES + ([LINK] if (tool, arguments) in PATHS else []):
        result = await client.call_tool(tool, filled(arguments, value))
        text = result.content[0].text if result.content else ""
        assert result.is_error, f"{tool} accepted {value!r}: {text[:300]}"
        assert text and "Traceback" not in text
    assert (planted / "secret.txt").read_text() == "do not touch"
    assert sorted(p.name for p in planted.iterdir()) == ["secret.txt"]


async def test_resource_uris_refuse_every_escape(client: Client, planted: Path) -> None:
    for template in RESOURCES:
        for value in ESCAPES:
            with pytest.raises(MCPError):
                await client.read_resource(template.format(value))
    assert (planted / "secret.txt").read_text() == "do not touch"
