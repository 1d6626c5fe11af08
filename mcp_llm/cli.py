"""Command line: `mcp-llm [serve] [--flags]` serves; `mcp-llm models prepare` makes the default model;
`mcp-llm bench [--prompts N ...]` runs the benchmark (see `bench/bench.py`; from a source checkout only).

Serve flags are the settings' names in kebab case (`--max-model-len 4096`, `--transport http`);
every flag also reads from `MCP_LLM_<NAME>` in the environment. Logs go to stderr only.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from mcp_llm.server.process import log_to_stderr, loop_options
from mcp_llm.server.prompts import PromptFileError
from mcp_llm.settings import Settings, load_settings

if TYPE_CHECKING:
    from mcp_llm.core.access import Principal

log = logging.getLogger("mcp_llm")


def serve(settings: Settings) -> None:
    """Serve over stdio or Streamable HTTP until the client leaves or a signal arrives; refuse a damaged
    database, and a data dir that another in-process engine owns or that sits on a network share."""

    from mcp_llm import datadir
    from mcp_llm.server import auth, front_ends

    if reason := front_ends.refusal(settings):
        sys.exit(f"mcp-llm: {reason}")
    tokens: dict[str, Principal] = {}
    if settings.transport == "http":
        try:
            tokens = auth.load_tokens(settings)
            auth.check_exposure(settings, tokens)
        except ValueError as exc:  # an unreadable token file, a bad entry, an unauthenticated remote bind
            sys.exit(f"mcp-llm: {exc}")
    from mcp_llm.core.store import StoreError, open_database

    try:
        datadir.refuse_network_share(settings.data_dir)
        open_database(settings.database).close()  # a damaged database stops the start here, named, left alone
        owner = datadir.engine_owner(settings.data_dir) if settings.backend == "local" else contextlib.nullcontext()
        with owner:
            _run(settings, tokens)
    except (datadir.DataDirRefused, StoreError) as exc:
        sys.exit(f"mcp-llm: {exc}")


def _run(settings: Settings, tokens: dict[str, Principal]) -> None:
    import anyio

    from mcp_llm.server import http
    from mcp_llm.server.app import create_app

    if settings.api_server_count > 1:
        from mcp_llm.server.front_ends import serve_front_ends

        serve_front_ends(settings, tokens)
        return
    app = create_app(settings, tokens=tokens)
    loop = loop_options()
    if settings.transport == "stdio":
        # SIGTERM unwinds like Ctrl-C, so the lifespan drains and stops the engine (no orphan processes).
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        anyio.run(app.run_stdio_async, backend_options=loop)
    else:
        log.info(
            "serving Streamable HTTP at http://%s:%d/mcp (%s)",
            settings.host,
            settings.port,
            f"{len(tokens)} bearer tokens" if tokens else "no authentication: loopback only",
        )
        anyio.run(http.serve, app, settings, backend_options=loop)  # uvicorn handles SIGINT/SIGTERM itself


def models_command(argv: list[str]) -> None:
    """`mcp-llm models prepare [--models-dir DIR] [--force]`: the default model and the bundled embedding model."""
    from mcp_llm import default_model, embedding_model

    parser = argparse.ArgumentParser(prog="mcp-llm models")
    sub = parser.add_subparsers(dest="action", required=True)
    prep = sub.add_parser(
        "prepare", help="Make the default model (SmolLM2-135M-Instruct) and the embedding model (all-MiniLM-L6-v2)."
    )
    prep.add_argument("--models-dir", type=Path, default=None, help="Model store (default: <data dir>/models).")
    prep.add_argument("--force", action="store_true", help="Convert again even if prepared.")
    args = parser.parse_args(argv)
    store = args.models_dir or Settings().model_store
    print(default_model.prepare(store, force=args.force))
    print(embedding_model.prepare(store))


def bench_command(argv: list[str]) -> None:
    """`mcp-llm bench`: the benchmark lives in the checkout's bench/ (not shipped), so this runs only from one."""
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "bench" / "bench.py").is_file():
        sys.exit(
            "mcp-llm bench: the benchmark is not installed with the package; run it from a source checkout "
            "(python bench/bench.py --help)"
        )
    sys.path.insert(0, str(checkout))
    from bench.bench import main as bench_main

    bench_main(argv)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["models"]:
        log_to_stderr("INFO")
        models_command(argv[1:])
        return
    if argv[:1] == ["bench"]:
        log_to_stderr("INFO")
        bench_command(argv[1:])
        return
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        sys.exit(f"mcp-llm: invalid settings: {problems}")
    log_to_stderr(settings.log_level)
    try:
        serve(settings)
    except KeyboardInterrupt:
        log.info("stopped")
    except PromptFileError as exc:
        sys.exit(f"mcp-llm: {exc}")


if __name__ == "__main__":
    main()
