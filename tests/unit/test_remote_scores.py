"""The remote backend asks vLLM's server for `prompt_logprobs` unstreamed (its server refuses them on a stream) and
reads them into the in-process engine's shape. No vLLM server here: a loopback HTTP server answers with vLLM's
own response models rendered as its server renders them (FastAPI's JSONResponse of `model_dump()`); the real
server is tests/integration/test_backends.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import test_utils, web

from mcp_llm.engine.remote import RemoteEngine
from mcp_llm.errors import InputError
from mcp_llm.schemas import SamplingOptions, TokenLogprob
from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio
PROMPT = [504, 3575, 282]  # "The capital of"


def served(scored: bool = True) -> dict:
    """vLLM's unstreamed /v1/completions answer, as JSON on the wire."""
    from vllm.entrypoints.openai.completion.protocol import CompletionResponse, CompletionResponseChoice
    from vllm.entrypoints.serve.engine.protocol import UsageInfo
    from vllm.logprobs import Logprob

    at = [
        None,
        {3575: Logprob(-5.5, 9, " capital"), 1: Logprob(-1.0, 1, " first"), 2: Logprob(-2.0, 2, " best")},
        {282: Logprob(-0.25, 1, " of"), 28: Logprob(-3.0, 2, " city")},
    ]
    choice = CompletionResponseChoice(index=0, text=" France", finish_reason="length", prompt_logprobs=at)
    if not scored:
        choice = choice.model_copy(update={"prompt_logprobs": None})
    usage = UsageInfo(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    return json.loads(json.dumps(CompletionResponse(model="m", choices=[choice], usage=usage).model_dump()))


@asynccontextmanager
async def remote(answer: dict, sent: list[dict]) -> AsyncIterator[RemoteEngine]:
    """Our remote backend, pointed at an HTTP server on loopback that gives `answer` to every completion."""

    async def completions(request: web.Request) -> web.Response:
        sent.append(await request.json())
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    async with test_utils.TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        settings = Settings(backend="openai", base_url=url)
        engine = RemoteEngine(settings, httpx.AsyncClient(base_url=url), {"id": "m", "max_model_len": 2048}, None)
        try:
            yield engine
        finally:
            await engine.shutdown(0)


async def test_prompt_logprobs_are_asked_unstreamed_and_read_as_the_local_engine_gives_them() -> None:
    sent: list[dict] = []
    async with remote(served(), sent) as engine:
        done = await engine.generate(PROMPT, SamplingOptions(max_tokens=2, temperature=0, prompt_logprobs=2), "r1")
    (body,) = sent
    assert body["stream"] is False and "stream_options" not in body and body["prompt_logprobs"] == 2
    alternatives = [TokenLogprob(token=" first", logprob=-1.0), TokenLogprob(token=" best", logprob=-2.0)]
    ranked = [TokenLogprob(token=" of", logprob=-0.25), TokenLogprob(token=" city", logprob=-3.0)]
    assert done.prompt_logprobs == [
        None,
        TokenLogprob(token=" capital", logprob=-5.5, top=alternatives),
        TokenLogprob(token=" of", logprob=-0.25, top=ranked),
    ]
    assert (done.text, done.usage.completion_tokens, done.timing.ttft_ms) == (" France", 2, None)


async def test_a_server_that_leaves_them_out_is_said_so() -> None:
    async with remote(served(scored=False), []) as engine:
        with pytest.raises(InputError, match="returned no prompt_logprobs"):
            await engine.generate(PROMPT, SamplingOptions(prompt_logprobs=1), "r2")
