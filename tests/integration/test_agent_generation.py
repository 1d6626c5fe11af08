"""Agent-native generate on the real engine with the default model: every structured-output mode, logprobs and
confidence, n samples, tool calling (constrained on the base model; `auto` through vLLM's hermes parser with an
adapter taught to call), a whole tool loop, and reasoning split off by vLLM's deepseek_r1 parser (an adapter
taught to think in tags). Bad inputs each get a tool error that says what to fix."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from mcp import Client

from mcp_llm.core.access import Principal
from mcp_llm.core.jobs import JobRunner
from mcp_llm.core.services import Services
from mcp_llm.schemas import SamplingOptions
from tests.support.inproc import client_as, http_app

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time now in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "enum": ["UTC", "CET", "PST"]}},
            "required": ["timezone"],
        },
    },
}
CITIES = ["Paris", "Berlin", "Tokyo", "Madrid", "Rome", "Oslo"]
SUMS = [(2, 3), (4, 4), (1, 6), (5, 2), (3, 3), (6, 1)]


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def generate(client: Client, **arguments) -> dict:
    result = await client.call_tool("generate", {"temperature": 0, "max_tokens": 24} | arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def batch(client: Client, **arguments) -> list[dict]:
    """A batch's items, read back from its results resource (as a client that pages them would)."""
    result = await client.call_tool("batch", {"temperature": 0, "max_tokens": 24, "wait": False} | arguments)
    assert not result.is_error, result.content[0].text
    job_id = result.structured_content["job"]["job_id"]
    status = await client.call_tool("job_status", {"job_id": job_id})
    while status.structured_content["status"] in ("queued", "running"):
        await anyio.sleep(0.2)
        status = await client.call_tool("job_status", {"job_id": job_id})
    page = await client.read_resource(f"jobs://{job_id}/results/1")
    return json.loads(page.contents[0].text)["items"]


async def refused(client: Client, **arguments) -> str:
    result = await client.call_tool("generate", {"max_tokens": 4} | arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


@pytest.fixture(scope="module")
async def taught(app) -> AsyncIterator[None]:
    """Two adapters trained here: one answers weather questions with a Hermes `<tool_call>`, one thinks in
    `<think>` tags before it answers a sum."""
    calls = [{"prompt": f"What is the weather in {city}?", "completion": _hermes(city)} for city in CITIES]
    thoughts = [
        {"prompt": f"What is {a} plus {b}?", "completion": f"<think>{a} and {b} make {a + b}.</think>It is {a + b}."}
        for a, b in SUMS
    ]
    async with Client(app) as client:
        for name, examples in (("calls-weather", calls), ("thinks-first", thoughts)):
            result = await client.call_tool(
                "train_adapter", {"name": name, "examples": examples, "epochs": 8}, read_timeout_seconds=900
            )
            assert not result.is_error, result.content[0].text
    yield


def _hermes(city: str) -> str:
    return f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}\n</tool_call>'


@pytest.fixture
def tool_parser(services: Services) -> Iterator[None]:
    """The server as started with --tool-call-parser hermes."""
    yield from started_with(services, tool_call_parser="hermes")


@pytest.fixture
def reasoning_parser(services: Services) -> Iterator[None]:
    """The server as started with --reasoning-parser deepseek_r1 (which reads an answer without tags as
    reasoning: DeepSeek-R1 starts in thought)."""
    yield from started_with(services, reasoning_parser="deepseek_r1")


def started_with(services: Services, **settings: str) -> Iterator[None]:
    before, parsers = services.settings, services.jobs.parsers
    services.settings = before.model_copy(update=settings)
    services.jobs.parsers = parsers | settings
    yield
    services.settings, services.jobs.parsers = before, parsers


async def test_choice_regex_and_grammar_hold(client: Client) -> None:
    colours = ["red", "green", "blue"]
    picked = await generate(client, messages=chat("Name a colour."), choice=colours)
    assert picked["text"] in colours
    code = await generate(client, prompt="A three-digit number:", regex=r"[0-9]{3}")
    assert re.fullmatch(r"[0-9]{3}", code["text"])
    grammar = 'root ::= answer " because " reason\nanswer ::= "yes" | "no"\nreason ::= [a-z ]{1,20}'
    said = await generate(client, messages=chat("Is the sky blue?"), grammar=grammar, max_tokens=40)
    assert re.fullmatch(r"(yes|no) because [a-z ]{1,20}", said["text"]), said["text"]


async def test_logprobs_sum_sensibly_and_confidence_is_lower_for_nonsense(client: Client) -> None:
    sure = await generate(client, prompt="The capital of France is", max_tokens=3, logprobs=3, prompt_logprobs=1)
    assert len(sure["logprobs"]) == sure["usage"]["completion_tokens"] == 3
    assert "".join(t["token"] for t in sure["logprobs"]) == sure["text"]
    for token in sure["logprobs"]:
        assert token["logprob"] <= 0 and len(token["top"]) == 3
        assert token["top"][0]["logprob"] >= token["logprob"] - 1e-4  # greedy: the sampled one is the likeliest
    summary = sure["confidence"]
    mean = sum(t["logprob"] for t in sure["logprobs"]) / 3
    assert summary["mean_logprob"] == pytest.approx(mean) and 0 < summary["min_prob"] <= summary["mean_prob"] <= 1
    assert sure["prompt_logprobs"][0] is None and len(sure["prompt_logprobs"]) == sure["usage"]["prompt_tokens"]
    nonsense = await generate(client, prompt="qzv blorft wib 9x zzk", max_tokens=3, logprobs=0)
    assert nonsense["logprobs"][0]["top"] is None
    assert nonsense["confidence"]["mean_prob"] < summary["mean_prob"], (nonsense["confidence"], summary)


async def test_n_samples_come_back_and_pick_takes_the_most_confident(client: Client) -> None:
    drawn = await generate(client, prompt="My favourite animal is", n=3, temperature=1.0, seed=7, max_tokens=8)
    assert len(drawn["samples"]) == 3 and drawn["text"] == drawn["samples"][0]["text"]
    assert drawn["usage"]["completion_tokens"] == sum(s["completion_tokens"] for s in drawn["samples"])
    best = await generate(
        client, prompt="My favourite animal is", n=3, temperature=1.0, seed=7, max_tokens=8, pick="most_confident"
    )
    top = max(best["samples"], key=lambda s: s["confidence"]["mean_logprob"])
    assert best["text"] == top["text"] and best["confidence"] == top["confidence"]


async def test_required_and_named_tools_give_schema_valid_calls_on_the_base_model(client: Client) -> None:
    asked = chat("What is the weather in Paris?")
    some = await generate(client, messages=asked, tools=[WEATHER, CLOCK], tool_choice="required", max_tokens=60)
    assert some["finish_reason"] == "tool_calls" and some["tool_calls"] and some["text"] == ""
    for call in some["tool_calls"]:
        assert call["name"] in ("get_weather", "get_time") and call["id"].startswith("call_")
        key = "city" if call["name"] == "get_weather" else "timezone"
        assert isinstance(call["arguments"][key], str)
    named = await generate(client, messages=asked, tools=[WEATHER, CLOCK], tool_choice="get_time", max_tokens=30)
    (call,) = named["tool_calls"]
    assert call["name"] == "get_time" and call["arguments"]["timezone"] in ("UTC", "CET", "PST")


async def test_a_whole_tool_loop_runs_through_generate(client: Client) -> None:
    turns = chat("What is the weather in Oslo?")
    first = await generate(client, messages=turns, tools=[WEATHER], tool_choice="get_weather", max_tokens=30)
    (call,) = first["tool_calls"]
    turns += [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"celsius": 4, "sky": "snow"}'},
    ]
    final = await generate(client, messages=turns, tools=[WEATHER], tool_choice="none", max_tokens=30)
    assert final["text"].strip() and final["tool_calls"] is None and final["finish_reason"] in ("stop", "length")


async def test_auto_reads_the_taught_call_and_leaves_plain_answers_alone(
    client: Client, taught: None, tool_parser: None
) -> None:
    asked = chat("What is the weather in Paris?")
    called = await generate(client, messages=asked, tools=[WEATHER], adapter="calls-weather", max_tokens=40)
    assert called["tool_calls"] and called["tool_calls"][0]["name"] == "get_weather", called
    assert called["tool_calls"][0]["arguments"] == {"city": "Paris"} and "<tool_call>" not in called["text"]
    plain = await generate(client, messages=chat("Say hello."), tools=[WEATHER], max_tokens=12)
    assert plain["tool_calls"] is None and plain["text"] and plain["finish_reason"] != "tool_calls"


async def test_reasoning_is_kept_apart_from_the_answer(client: Client, taught: None, reasoning_parser: None) -> None:
    asked = chat("What is 2 plus 3?")
    quiet = await generate(client, messages=asked, adapter="thinks-first", max_tokens=40)
    assert "<think>" not in quiet["text"] and "make" not in quiet["text"] and "5" in quiet["text"], quiet
    assert quiet["reasoning"] is None
    shown = await generate(client, messages=asked, adapter="thinks-first", max_tokens=40, include_reasoning=True)
    assert "make 5" in shown["reasoning"] and shown["text"] == quiet["text"]


async def test_bad_inputs_say_what_to_fix(client: Client) -> None:
    asked = chat("Hi")
    both = await refused(client, messages=asked, choice=["a"], regex="a")
    assert "at most one structured-output mode" in both and "choice and regex" in both
    assert "regex" in await refused(client, prompt="x", regex="(unclosed")
    assert "grammar" in (await refused(client, prompt="x", grammar="root ::= (")).lower()
    unknown = await refused(client, messages=asked, tools=[WEATHER], tool_choice="get_wether")
    assert "Did you mean 'get_weather'" in unknown
    assert "--tool-call-parser" in await refused(client, messages=asked, tools=[WEATHER], tool_choice="auto")
    assert "need `messages`" in await refused(client, prompt="x", tools=[WEATHER], tool_choice="required")
    assert "tools[0] is not a tool" in await refused(client, messages=asked, tools=[{"name": "f"}], tool_choice="none")
    assert "leave out json_schema" in await refused(
        client, messages=asked, tools=[WEATHER], tool_choice="required", choice=["a"]
    )
    assert "give n of 2 or more" in await refused(client, prompt="x", pick="most_confident")
    remote_ref = {"type": "function", "function": {"name": "f", "parameters": {"$ref": "https://example.com/s"}}}
    assert "$ref" in await refused(client, messages=asked, tools=[remote_ref], tool_choice="f")


async def test_batch_items_call_tools_as_generate_does(client: Client) -> None:
    """Each chat item of a batch gets the tools; a named tool's call equals `generate`'s for the same chat."""
    chats = [chat(f"What is the weather in {city}?") for city in CITIES[:3]]
    items = await batch(client, messages=chats, tools=[WEATHER, CLOCK], tool_choice="get_weather", max_tokens=30)
    for item, asked in zip(items, chats, strict=True):
        alone = await generate(client, messages=asked, tools=[WEATHER, CLOCK], tool_choice="get_weather", max_tokens=30)
        assert item["status"] == "done" and item["finish_reason"] == "tool_calls" and item["text"] == "", item
        (call,) = item["tool_calls"]
        assert call["name"] == "get_weather" and call["arguments"] == alone["tool_calls"][0]["arguments"]
    some = await batch(client, messages=chats[:2], tools=[WEATHER, CLOCK], tool_choice="required", max_tokens=60)
    assert all(i["tool_calls"] and i["tool_calls"][0]["name"] in ("get_weather", "get_time") for i in some), some
    plain = await batch(client, prompts=["Hello"], max_tokens=4)
    assert "tool_calls" not in plain[0] and "reasoning" not in plain[0]  # pages carry only what was asked for


async def test_batch_auto_reads_each_items_call(client: Client, taught: None, tool_parser: None) -> None:
    cities = CITIES[:3]
    called = await batch(
        client,
        messages=[chat(f"What is the weather in {city}?") for city in cities],
        tools=[WEATHER],
        adapter="calls-weather",
        max_tokens=40,
    )
    for item, city in zip(called, cities, strict=True):
        assert [(c["name"], c["arguments"]) for c in item.get("tool_calls") or ()] == [
            ("get_weather", {"city": city})
        ], item
        assert "<tool_call>" not in item["text"] and item["finish_reason"] == "tool_calls"


async def test_batch_items_keep_reasoning_apart(client: Client, taught: None, reasoning_parser: None) -> None:
    sums = SUMS[:3]
    asked = [chat(f"What is {a} plus {b}?") for a, b in sums]
    thought = await batch(client, messages=asked, adapter="thinks-first", max_tokens=40, include_reasoning=True)
    for item, (a, b) in zip(thought, sums, strict=True):
        assert "<think>" not in item["text"] and str(a + b) in item["text"], item
        assert f"make {a + b}" in item["reasoning"], item
    quiet = await batch(client, messages=asked, adapter="thinks-first", max_tokens=40)
    assert [i["text"] for i in quiet] == [i["text"] for i in thought] and not any("reasoning" in i for i in quiet)


async def test_a_resumed_job_answers_with_its_stored_tools(services: Services) -> None:
    """The tools, tool_choice and pick are stored with the job: a job cut by a shutdown resumes with them."""
    inputs = [{"messages": chat(f"What is the weather in {city}?")} for city in CITIES[:4]]
    answer = {"tools": [WEATHER], "tool_choice": "get_weather", "pick": "first", "include_reasoning": False}
    job_id = services.jobs.submit(inputs, SamplingOptions(max_tokens=30, temperature=0), "resumer", None, answer)
    task = services.jobs._tasks[job_id]
    task.cancel()  # as a shutdown does: the job stays open, its unfinished items pending
    await asyncio.gather(task, return_exceptions=True)
    assert services.store.job(job_id)["status"] in ("queued", "running")  # open: it resumes
    restarted = JobRunner(services.store, services.recorder)  # the next server on the same database
    restarted.parsers = services.jobs.parsers
    try:
        assert job_id in restarted.resume()
        await restarted.progress(job_id).finished.wait()
    finally:
        await restarted.close()
    items = services.store.items(job_id)
    assert [i["status"] for i in items] == ["done"] * 4
    for row in items:
        (call,) = json.loads(row["scores"])["tool_calls"]
        assert call["name"] == "get_weather" and isinstance(call["arguments"]["city"], str)


async def test_batch_refuses_bad_tools_before_storing_a_job(client: Client, services: Services) -> None:
    before = len(services.store.jobs(limit=1_000_000))
    asked = [chat("Hi")]
    wrong = await client.call_tool("batch", {"messages": asked, "tools": [WEATHER], "tool_choice": "get_wether"})
    assert wrong.is_error and "Did you mean 'get_weather'" in wrong.content[0].text
    raw = await client.call_tool("batch", {"prompts": ["x"], "tools": [WEATHER], "tool_choice": "required"})
    assert raw.is_error and "need `messages`" in raw.content[0].text
    auto = await client.call_tool("batch", {"messages": asked, "tools": [WEATHER]})
    assert auto.is_error and "--tool-call-parser" in auto.content[0].text
    assert len(services.store.jobs(limit=1_000_000)) == before


@pytest.mark.parametrize("mode", ["legacy", None])
async def test_partial_text_arrives_in_progress_messages_and_prefixes_the_answer(
    services: Services, mode: str | None
) -> None:
    """Over real HTTP (the progress token on the wire), on both protocol lines."""
    seen: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    arguments = {"prompt": "Once upon a time", "max_tokens": 160, "ignore_eos": True, "temperature": 0}
    tokens = {"tok-stream": Principal("streamer", "user")}
    async with http_app(services, tokens) as url, client_as(url, "tok-stream", mode=mode) as client:
        result = await client.call_tool("generate", arguments, progress_callback=on_progress)
    final = result.structured_content["text"]
    partial = [text for text in seen if text and text != final]
    assert partial, seen
    assert all(final.startswith(text) for text in partial), (partial, final)
    assert len(set(partial)) == len(partial)  # only sent when it grew
