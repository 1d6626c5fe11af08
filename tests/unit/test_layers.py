"""The layers of ARCHITECTURE.md, checked on the source (no engine, no imports of the package: `ast` only).

    entry (cli.py) → server/ (the only MCP) → core/ (no MCP) → engine/ (the only vLLM) → settings, schemas, errors

Every import counts: module level, under `if TYPE_CHECKING:`, and inside functions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mcp_llm"

MCP = ("mcp", "mcp_types")

# Function-level imports of third-party modules that are heavy at import (the handshake must not load them),
# or only present where the code runs (the worker venv).
HEAVY = {
    "vllm": "the engine; seconds to import, pulls torch",
    "torch": "seconds to import",
    "transformers": "seconds to import",
    "peft": "worker venv: adapter training and merging",
    "llmcompressor": "worker venv: quantization",
    "compressed_tensors": "worker venv: quantization",
    "safetensors": "read only when an adapter is imported",
    "matplotlib": "charts only, on the first benchmark",
    "sqlite_utils": "the database, opened after the handshake",
    "numpy": "heavy at import",
    "httpx": "the remote backend and HTTP probes only",
    "prometheus_client": "engine-side registry, made when an engine starts",
    "anyio": "the event loop runner, once the CLI decides to serve",
    "mcp_types": "task_client: the SDK's private 2025-11-25 method tables, read once on first use",
    "bench": "cli: `mcp-llm bench` runs the checkout's bench/ (not shipped), when there is one",
}

# Function-level imports of our own modules, each with the reason it is not at module level. Nothing here
# dodges an import cycle: each is about import cost or about what a subcommand needs.
LAZY_OWN = {
    ("mcp_llm.cli", "mcp_llm.server.app"): "`mcp-llm models prepare` and `bench` build no server",
    ("mcp_llm.cli", "mcp_llm.server.http"): "uvicorn/starlette routes: only with --transport http",
    ("mcp_llm.cli", "mcp_llm.server.auth"): "token files and exposure checks: only when serving",
    ("mcp_llm.cli", "mcp_llm.core.store"): "the pre-start database check: only when serving",
    ("mcp_llm.cli", "mcp_llm.datadir"): "the data-dir lock and network-share check: only when serving",
    ("mcp_llm.cli", "mcp_llm.default_model"): "`mcp-llm models prepare` only",
    ("mcp_llm.cli", "mcp_llm.embedding_model"): "`mcp-llm models prepare` only",
    ("mcp_llm.cli", "mcp_llm.server.front_ends"): "the engine core and front-end processes: --api-server-count only",
    ("mcp_llm.server.front_ends", "mcp_llm.engine.local"): "pulls vLLM (the parent starts the engine core)",
    ("mcp_llm.server.auth", "mcp_llm.server.oauth"): "PyJWT and cryptography (0.2 s): only with --oauth-issuer",
    # These pull vLLM (and torch) when imported: loaded when an engine starts, never at the handshake.
    ("mcp_llm.core.services", "mcp_llm.engine.local"): "pulls vLLM",
    ("mcp_llm.core.services", "mcp_llm.engine.remote"): "pulls vLLM's tokenizer helpers and httpx",
    ("mcp_llm.core.services", "mcp_llm.engine.embedder"): "pulls vLLM",
    ("mcp_llm.core.quantize", "mcp_llm.engine.local"): "pulls vLLM (temporary measuring engines)",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # what it imports, dotted (a submodule when `from pkg import submodule`)
    in_function: bool
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    if not dotted.startswith("mcp_llm"):
        return False
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend(Import(name, a.name, in_function, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    source = ".".join([*base, child.module] if child.module else base)
                else:
                    source = child.module or ""
                for alias in child.names:
                    sub = f"{source}.{alias.name}"
                    target = sub if is_module(sub) else source
                    found.append(Import(name, target, in_function, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))
IMPORTS = [i for path in MODULES for i in imports_of(path)]


def under(dotted: str, *prefixes: str) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in prefixes)


def where(found: list[Import]) -> str:
    return "\n".join(f"{i.module}:{i.line} imports {i.target}" for i in found)


def test_the_walk_sees_the_layers() -> None:
    """Guards the guard: the walk finds the packages and their imports, at module and function level."""
    names = {module_name(p) for p in MODULES}
    assert {"mcp_llm.core.services", "mcp_llm.server.app", "mcp_llm.engine.local", "mcp_llm.cli"} <= names
    assert any(i.module == "mcp_llm.server.app" and under(i.target, "mcp") for i in IMPORTS)
    assert any(i.module == "mcp_llm.engine.local" and i.in_function and under(i.target, "vllm") for i in IMPORTS)


@pytest.mark.parametrize("layer", ["mcp_llm.core", "mcp_llm.engine"])
def test_core_and_engine_know_nothing_of_mcp(layer: str) -> None:
    bad = [i for i in IMPORTS if under(i.module, layer) and under(i.target, *MCP, "mcp_llm.server")]
    assert not bad, f"{layer} must not import mcp, mcp_types or mcp_llm.server:\n{where(bad)}"


def test_engine_does_not_import_core() -> None:
    bad = [i for i in IMPORTS if under(i.module, "mcp_llm.engine") and under(i.target, "mcp_llm.core")]
    assert not bad, f"mcp_llm.engine sits below mcp_llm.core:\n{where(bad)}"


def test_nothing_below_the_server_imports_it() -> None:
    """Only the entry (cli) and the server itself import mcp_llm.server."""
    bad = [
        i for i in IMPORTS if under(i.target, "mcp_llm.server") and not under(i.module, "mcp_llm.server", "mcp_llm.cli")
    ]
    assert not bad, where(bad)


def test_tools_never_import_tools() -> None:
    shared = {
        "mcp_llm.server.tools",
        "mcp_llm.server.tools.common",
        "mcp_llm.server.tools.context",
    }
    bad = [
        i
        for i in IMPORTS
        if under(i.module, "mcp_llm.server.tools")
        and under(i.target, "mcp_llm.server.tools")
        and i.target not in shared
        and i.target != i.module
    ]
    assert not bad, f"tools share helpers through common, never through each other:\n{where(bad)}"


def test_the_tools_package_imports_no_tool() -> None:
    """`mcp_llm.server.tools` itself imports none of its modules (app.py gathers them), so `common` can be used
    from anywhere in the server without pulling every tool."""
    bad = [i for i in IMPORTS if i.module == "mcp_llm.server.tools" and under(i.target, "mcp_llm")]
    assert not bad, where(bad)


def test_function_level_imports_are_for_cost_not_cycles() -> None:
    """Our own modules imported inside functions are listed in LAZY_OWN with a reason; third-party ones are
    heavy (HEAVY). Anything else is at module level, where a cycle would show."""
    own = [i for i in IMPORTS if i.in_function and under(i.target, "mcp_llm")]
    unlisted = [i for i in own if (i.module, i.target) not in LAZY_OWN]
    advice = "function-level imports of mcp_llm modules (move them up, or list them with a reason)"
    assert not unlisted, f"{advice}:\n{where(unlisted)}"
    third = [
        i
        for i in IMPORTS
        if i.in_function
        and not under(i.target, "mcp_llm")
        and not under(i.module, "mcp_llm.workers")  # run in the worker venv, never imported by the server
        and i.target.split(".")[0] not in HEAVY
    ]
    assert not third, f"function-level third-party imports not in HEAVY:\n{where(third)}"


def test_the_lists_name_no_stale_exceptions() -> None:
    used = {(i.module, i.target) for i in IMPORTS if i.in_function}
    stale = set(LAZY_OWN) - used
    assert not stale, f"LAZY_OWN lists imports that no longer exist: {sorted(stale)}"
