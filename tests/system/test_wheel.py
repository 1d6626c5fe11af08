"""The package as `pip install` makes it, outside the checkout: build the wheel, install it (not editable) into a
fresh venv, start its `mcp-llm` command from a folder that is not the repository, and read what ships as package
data (a prompt, the dashboard page) and `model://config` over stdio. The dependencies come from the project's venv
through a plain path entry, so nothing is downloaded and the checkout's editable install is not loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import MODELS_DIR, REPO

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SHIPPED = (
    "mcp_llm/server/assets/dashboard.html",
    "mcp_llm/server/assets/prompts/review_code.md",
    "mcp_llm/core/assets/eval/heldout.txt",
    "mcp_llm/engine/vllm_patches.py",
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the wheel; returns its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # the checkout as a fresh clone has it: no build/, egg-info or venvs
    junk = (".git", ".venv*", ".cache", ".gpu", ".data", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*junk), symlinks=True)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work)]
    build = [*pip_wheel, str(source)]
    subprocess.run(build, check=True, timeout=300, cwd=work)
    [wheel] = work.glob("mcp_llm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names, set(SHIPPED) - names
    assert not [n for n in names if n.startswith(("bench/", "tests/"))], "benchmarks and tests do not ship"
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    (site / "zz_project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")  # a path, not run
    return venv / "bin"


async def test_the_installed_wheel_serves_its_package_data_outside_the_checkout(installed: Path, tmp_path) -> None:
    where = subprocess.check_output(
        [installed / "python", "-c", "import mcp_llm; print(mcp_llm.__file__)"], text=True, cwd=tmp_path
    ).strip()
    assert where.startswith(str(installed.parent)), f"mcp_llm came from {where}, not the wheel"
    path = f"{installed}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {"MCP_LLM_DATA_DIR": str(tmp_path / "data"), "MCP_LLM_MODELS_DIR": str(MODELS_DIR), "PATH": path}
    params = StdioServerParameters(command=str(installed / "mcp-llm"), args=[], env=env, cwd=str(tmp_path))
    with anyio.fail_after(120):
        async with Client(params, read_timeout_seconds=60) as client:
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            review = await client.get_prompt("review_code", {"code": "def f(): return 1", "focus": "security"})
            page = (await client.read_resource("ui://mcp-llm/dashboard.html")).contents[0]
            config = (await client.read_resource("model://config")).contents[0].text
    assert {"review_code", "review_output", "review_serving"} <= prompts
    assert "def f(): return 1" in review.messages[0].content.text
    assert "<svg" in page.text or "<html" in page.text.lower()
    assert '"model": "SmolLM2-135M-Instruct"' in config
