"""The remote backend's requests against a stand-in vLLM server (aiohttp on loopback, no engine): streamed and
unstreamed completions, the per-request-metrics probe, a cancelled call dropping its connection, HTTP errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from mcp_llm.engine.remote import RemoteEngine, RemoteUnavailable
from mcp_llm.errors import Busy, InputError
from mcp_llm.schemas import SamplingOptions
from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio
METRICS = {"time_to_first_token_ms": 5.0, "queue_time_ms": 1.0, "mean_itl_ms": 7.0}


@dataclass
class StandIn:
    """What the stand-in saw and how it answers."""

    metrics: bool = True
    status: int = 200
    streamed: list[bool] = field(default_factory=list)
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


def usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}


def stand_in_app(seen: StandIn) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.streamed.append(bool(body.get("stream")))
        n = body["max_tokens"]
        if seen.status != 200:
            return web.json_response({"error": {"message": "no"}}, status=seen.status)
        if not body.get("stream"):
            answer = {"choices": [{"index": 0, "text": "ab" * n, "finish_reason": "length"}], "usage": usage(n)}
            return web.json_response(answer | ({"metrics": METRICS} if seen.metrics else {}))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            for _ in range(n):
                chunk = {"choices": [{"index": 0, "text": "ab", "finish_reason": None}]}
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                await asyncio.sleep(0.005)
            await response.write(b"data: " + json.dumps({"choices": [], "usage": usage(n)}).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            seen.dropped.set()
            raise
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    return app


class Tokenizer:
    def encode(self, text: str) -> list[int]:
        return [1, 2]


@pytest.fixture
async def remote() -> AsyncIterator[tuple[RemoteEngine, StandIn]]:
    seen = StandIn()
    runner = web.AppRunner(stand_in_app(seen), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    settings = Settings(backend="openai", base_url=url)
    engine = RemoteEngine(settings, httpx.AsyncClient(base_url=url), {"id": "m", "max_model_len": 256}, Tokenizer())
    yield engine, seen
    await engine.shutdown(0)
    await runner.cleanup()


async def test_streamed_completion_is_timed_here(remote: tuple[RemoteEngine, StandIn]) -> None:
    engine, seen = remote
    done = await engine.generate([1, 2, 3], SamplingOptions(max_tokens=6), "r1")
    assert seen.streamed == [True] and done.text == "ab" * 6 and done.usage.completion_tokens == 6
    assert 0 < done.timing.ttft_ms <= done.timing.total_ms and done.timing.tpot_ms > 0


async def test_unstreamed_when_the_remote_reports_its_timing(remote: tuple[RemoteEngine, StandIn]) -> None:
    engine, seen = remote
    assert await engine._reports_timing()
    engine.server_timing = True
    done = await engine.generate([1, 2, 3], SamplingOptions(max_tokens=6), "r1")
    assert seen.streamed == [False, False] and done.text == "ab" * 6
    assert (done.timing.ttft_ms, done.timing.queue_ms, done.timing.tpot_ms) == (6.0, 1.0, 7.0)
    texts: list[str] = []
    await engine.generate([1, 2, 3], SamplingOptions(max_tokens=4), "r2", on_text=texts.append)
    assert seen.streamed[-1] is True and texts[-1] == "ab" * 4  # live text asked for: streamed


async def test_probe_says_no_without_metrics(remote: tuple[RemoteEngine, StandIn]) -> None:
    engine, seen = remote
    seen.metrics = False
    assert not await engine._reports_timing()


async def test_a_cancelled_call_drops_its_connection(remote: tuple[RemoteEngine, StandIn]) -> None:
    engine, seen = remote
    call = asyncio.ensure_future(engine.generate([1, 2, 3], SamplingOptions(max_tokens=200), "r1"))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(seen.dropped.wait(), 5)


@pytest.mark.parametrize(("status", "error"), [(429, Busy), (500, RemoteUnavailable), (400, InputError)])
async def test_http_errors_map_to_ours(remote: tuple[RemoteEngine, StandIn], status: int, error: type) -> None:
    engine, seen = remote
    seen.status = status
    with pytest.raises(error):
        await engine.generate([1, 2, 3], SamplingOptions(max_tokens=4), "r1")
