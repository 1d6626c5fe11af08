"""One contract, two backends: every test here runs against the in-process engine and against a real vLLM
OpenAI server on loopback (`--backend openai`), through a real MCP client."""

from __future__ import annotations

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_llm.core.services import Services

pytestmark = pytest.mark.anyio
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
LONG = {"prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"type": "string", "maxLength": 20}},
    "required": ["city", "country"],
    "additionalProperties": False,
}


@pytest.fixture(params=["local", "remote"])
def backend(request: pytest.FixtureRequest) -> tuple[MCPServer, Services]:
    """(app, services) of the in-process engine or of the remote backend."""
    if request.param == "local":
        return request.getfixturevalue("app"), request.getfixturevalue("services")
    return request.getfixturevalue("remote_app"), request.getfixturevalue("remote_services")


@pytest.fixture
async def on(backend: tuple[MCPServer, Services]) -> Client:
    async with Client(backend[0]) as client:
        yield client


async def wait_until(condition, timeout: float) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


async def test_chat_answers_paris_and_times_the_request(on: Client) -> None:
    result = await on.call_tool("generate", {"messages": CHAT, "temperature": 0, "max_tokens": 20})
    out = result.structured_content
    assert not result.is_error, result.content
    assert out["text"] == "The capital of France is Paris."
    usage = {k: out["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert usage == {"prompt_tokens": 37, "completion_tokens": 8, "total_tokens": 45}
    assert 0 < out["timing"]["ttft_ms"] <= out["timing"]["total_ms"] and out["timing"]["tpot_ms"] > 0


async def test_agent_options_work_the_same_on_both(on: Client) -> None:
    """choice, logprobs with alternatives, n samples and a constrained tool call, local and remote alike."""
    picked = await on.call_tool("generate", {"messages": CHAT, "choice": ["Paris", "Lyon"], "temperature": 0})
    assert picked.structured_content["text"] in ("Paris", "Lyon"), picked.content
    scored = (await on.call_tool("generate", {"prompt": "1, 2, 3,", "max_tokens": 3, "logprobs": 2})).structured_content
    assert len(scored["logprobs"]) == 3 and all(len(t["top"]) == 2 for t in scored["logprobs"])
    assert 0 < scored["confidence"]["min_prob"] <= scored["confidence"]["mean_prob"] <= 1
    drawn = (
        await on.call_tool("generate", {"prompt": "Hi", "n": 2, "max_tokens": 4, "temperature": 1})
    ).structured_content
    assert len(drawn["samples"]) == 2 and drawn["text"] == drawn["samples"][0]["text"]
    tool = {
        "type": "function",
        "function": {
            "name": "locate",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 20}},
                "required": ["city"],
            },
        },
    }
    called = await on.call_tool(
        "generate", {"messages": CHAT, "tools": [tool], "tool_choice": "locate", "max_tokens": 30, "temperature": 0}
    )
    (call,) = called.structured_content["tool_calls"]
    assert call["name"] == "locate" and isinstance(call["arguments"]["city"], str), called.content
    batched = await on.call_tool(
        "batch",
        {"messages": [CHAT, CHAT], "tools": [tool], "tool_choice": "locate", "max_tokens": 30, "temperature": 0},
    )
    for item in batched.structured_content["results"]:  # each item's call, as generate's for the same chat
        assert item["tool_calls"][0]["arguments"] == call["arguments"], item


async def test_prompt_logprobs_score_each_prompt_token(on: Client) -> None:
    """Remote: vLLM's server gives them only unstreamed, so such a request goes unstreamed (no TTFT)."""
    arguments = {"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0}
    result = await on.call_tool("generate", arguments | {"prompt_logprobs": 2, "logprobs": 1})
    out = result.structured_content
    assert not result.is_error, result.content
    scored = out["prompt_logprobs"]
    assert scored[0] is None and len(scored) == out["usage"]["prompt_tokens"] == 5
    assert "".join(t["token"] for t in scored[1:]) == " capital of France is"
    assert all(t["logprob"] < 0 and len(t["top"]) == 2 and t["top"][0]["logprob"] >= t["logprob"] for t in scored[1:])
    assert len(out["logprobs"]) == out["usage"]["completion_tokens"] and out["timing"]["total_ms"] > 0
    plain = (await on.call_tool("generate", arguments)).structured_content
    assert plain["prompt_logprobs"] is None and plain["text"] == out["text"]


async def test_prompt_logprobs_agree_across_backends(app: MCPServer, remote_app: MCPServer) -> None:
    arguments = {"prompt": "The capital of France is", "max_tokens": 1, "prompt_logprobs": 0}
    scored = []
    for served in (app, remote_app):
        async with Client(served) as client:
            scored.append((await client.call_tool("generate", arguments)).structured_content["prompt_logprobs"][1:])
    local, remote = scored
    assert [t["token"] for t in local] == [t["token"] for t in remote] and all(t["top"] is None for t in local + remote)
    assert [t["logprob"] for t in local] == pytest.approx([t["logprob"] for t in remote], abs=0.05)


async def test_prompt_stop_and_max_tokens(on: Client) -> None:
    cut = await on.call_tool("generate", {"prompt": "1, 2, 3, 4,", "max_tokens": 5, "temperature": 0})
    assert cut.structured_content["finish_reason"] == "length"
    assert cut.structured_content["usage"]["completion_tokens"] == 5
    stopped = await on.call_tool(
        "generate", {"prompt": "1, 2, 3, 4,", "max_tokens": 30, "stop": ["7"], "temperature": 0}
    )
    assert stopped.structured_content["finish_reason"] == "stop" and "7" not in stopped.structured_content["text"]


async def test_structured_output_follows_the_schema(on: Client) -> None:
    result = await on.call_tool(
        "generate",
        {"messages": CHAT, "json_schema": SCHEMA, "temperature": 0, "max_tokens": 60},
    )
    assert not result.is_error, result.content
    jsonschema.validate(result.structured_content["parsed"], SCHEMA)


async def test_count_tokens_agrees_with_the_engine(on: Client) -> None:
    counted = await on.call_tool("count_tokens", {"messages": CHAT})
    generated = await on.call_tool("generate", {"messages": CHAT, "max_tokens": 1})
    assert not generated.is_error, generated.content  # what went wrong, where it fails
    assert counted.structured_content["tokens"] == generated.structured_content["usage"]["prompt_tokens"] == 37


async def test_batch_keeps_order_reports_progress_and_isolates_a_bad_item(on: Client) -> None:
    prompts = ["word " * (i + 1) for i in range(15)]
    prompts.insert(6, "word " * 3000)  # longer than the 2048-token context: that item fails, the others run
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await on.call_tool(
        "batch", {"prompts": prompts, "max_tokens": 3, "temperature": 0}, progress_callback=on_progress
    )
    job, results = result.structured_content["job"], result.structured_content["results"]
    assert (job["status"], job["completed"], job["failed"]) == ("completed", 15, 1)
    assert [r["index"] for r in results] == list(range(16))
    assert results[6]["status"] == "error" and "2048" in results[6]["error"]
    assert [r["usage"]["prompt_tokens"] for r in results if r["index"] in (0, 7)] == [2, 8]
    # progress only grows; a keep-alive after the last item may add a fraction (the values must keep increasing)
    assert seen and seen == sorted(seen) and 16 in seen and seen[-1] < 17


async def test_a_cancelled_call_frees_its_engine_slot(on: Client, backend: tuple[MCPServer, Services]) -> None:
    engine = backend[1].engine
    await wait_until(lambda: engine.num_unfinished_requests() == 0, 30)
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def call() -> None:
            with scope:
                await on.call_tool("generate", LONG)

        tg.start_soon(call)
        await wait_until(lambda: engine.num_unfinished_requests() == 1 and engine.stats().running == 1, 30)
        scope.cancel()
    # ours drops the request at once; the engine's own running count (remote: its /metrics) follows
    await wait_until(lambda: engine.num_unfinished_requests() == 0 and engine.stats().running == 0, 15)


async def test_cancel_job_stops_the_engine_work(on: Client, backend: tuple[MCPServer, Services]) -> None:
    engine = backend[1].engine
    started = await on.call_tool(
        "batch", {"prompts": ["Once upon a time"] * 4, "wait": False, "max_tokens": 1500, "ignore_eos": True}
    )
    job_id = started.structured_content["job"]["job_id"]
    await wait_until(lambda: engine.stats().running >= 1, 30)
    cancelled = await on.call_tool("cancel_job", {"job_id": job_id})
    assert cancelled.structured_content["status"] == "cancelled"
    await wait_until(lambda: engine.num_unfinished_requests() == 0 and engine.stats().running == 0, 15)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prompt": "word " * 3000}, "2048 tokens"),
        ({"prompt": "hi", "adapter": "no-such-adapter"}, "no-such-adapter"),
        ({"prompt": "hi", "temperature": -1}, "temperature"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
    ],
)
async def test_bad_requests_are_tool_errors_that_say_what_to_fix(on: Client, arguments: dict, message: str) -> None:
    result = await on.call_tool("generate", arguments)
    assert result.is_error and message in result.content[0].text, result.content
    assert not (await on.call_tool("generate", {"prompt": "hi", "max_tokens": 2})).is_error


async def test_model_config_names_the_backend(on: Client, backend: tuple[MCPServer, Services]) -> None:
    config = (await on.read_resource("model://config")).contents[0].text
    expected = backend[1].settings.backend
    assert f'"backend": "{expected}"' in config
    assert ('"endpoint": "http://127.0.0.1:' in config) == (expected == "openai")
