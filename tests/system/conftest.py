"""The system tier's shared servers. Package-scoped: each stops once the worker's last system test ran, so their
engines are gone before that worker starts the integration tier's (tests/conftest.py orders the tiers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import SECURE_ADMIN, SECURE_TOKENS

if TYPE_CHECKING:
    from tests.support.fuzzing import RawStdio
    from tests.support.servers import HttpServer


@pytest.fixture(scope="package")
async def wire_http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HttpServer]:
    """One `server.py --transport http` subprocess (its own engine, a small KV cache) shared by the tests that only
    speak to a server over the wire (fuzzing, protocol garbage, conformance, Inspector): each engine start costs
    ~50 s on 2 cores, and these tests assert that the server keeps serving after what they send."""
    from tests.support.servers import http_server

    async with http_server(tmp_path_factory.mktemp("wire-http")) as server:
        yield server


@pytest.fixture(scope="package")
async def secure_http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HttpServer]:
    """One HTTP server that requires bearer tokens (SECURE_TOKENS), with tight in-flight bounds (1 per client,
    2 in total) and a 64 KiB body limit: the HTTP security tests, and the LangGraph example with a token."""
    from tests.support.servers import http_server

    tokens = ",".join(f"{client}:{token}" for client, token in SECURE_TOKENS.items())
    tokens += f",{SECURE_ADMIN[0]}:{SECURE_ADMIN[1]}:admin"
    flags = ["--auth-tokens", tokens, "--max-inflight-per-client", "1", "--max-inflight-total", "2"]
    async with http_server(tmp_path_factory.mktemp("secure"), *flags, "--max-request-body-bytes", "65536") as s:
        yield s


@pytest.fixture(scope="package")
def wire_stdio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawStdio]:
    """One `server.py` over stdio, initialized and serving, shared the same way (fuzzing, protocol garbage)."""
    from tests.support.fuzzing import stdio_server

    with stdio_server(tmp_path_factory.mktemp("wire-stdio")) as server:
        yield server
