"""Sampling flows with real MCP client sessions: a scripted host, a host answering with our real engine,
on the handshake era (2025-11-25: sampling requests mid-call) and 2026-07-28 (InputRequiredResult rounds)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from mcp_llm.core.services import Services
from mcp_llm.schemas import ChatMessage, SamplingOptions
from mcp_llm.server.app import create_app
from mcp_llm.server.tools.flows import ACTION_SCHEMA, ACTIONS
from tests.support.flows import ERAS, ScriptedHost, run

pytestmark = pytest.mark.anyio


def act(action: str, **payload) -> str:
    return json.dumps({"thought": f"I will {action}", "action": action, "input": payload})


@pytest.mark.parametrize("era", ERAS)
async def test_solve_runs_the_react_loop_with_the_hosts_actions(app, era: str) -> None:
    host = ScriptedHost(
        act("count_tokens", text="hello world"),
        act("generate", prompt="Say hi", max_tokens=8),
        act("final", answer="done: 42"),
    )
    result, version = await run(app, host, "solve", {"task": "count and greet"}, era)
    assert version == ("2025-11-25" if era == "legacy" else "2026-07-28")
    out = result.structured_content
    assert not result.is_error, result.content
    assert out["stopped"] == "final" and out["answer"] == "done: 42" and out["reasoner"] == "host"
    assert [s["action"] for s in out["steps"]] == ["count_tokens", "generate", "final"]
    assert int(out["steps"][0]["observation"]) > 0 and out["steps"][1]["observation"]
    assert out["sampling_calls"] == 3 and len(host.requests) == 3
    request = host.requests[-1]
    assert request.system_prompt.startswith("You solve a task") and request.max_tokens == 600
    assert request.model_preferences.intelligence_priority == 0.9
    observations = [m.content.text for m in request.messages if m.role == "user"]
    assert observations[0] == "Task: count and greet" and observations[1].startswith("Observation: ")


@pytest.mark.parametrize("era", ERAS)
async def test_malformed_reply_gets_one_corrective_reask_then_the_loop_stops(app, era: str) -> None:
    host = ScriptedHost("not json", act("final", answer="ok"))
    out = (await run(app, host, "solve", {"task": "t"}, era))[0].structured_content
    assert out["stopped"] == "final" and out["answer"] == "ok" and out["sampling_calls"] == 2
    assert "not usable" in host.requests[1].messages[-1].content.text
    host = ScriptedHost("still not json", '{"action": "dance", "input": {}}')
    out = (await run(app, host, "solve", {"task": "t"}, era))[0].structured_content
    assert out["stopped"] == "malformed" and out["answer"] is None
    assert "unknown action 'dance'" in out["steps"][-1]["error"]


async def test_max_steps_bounds_the_loop(app) -> None:
    host = ScriptedHost(*[act("count_tokens", text="x")] * 5)
    out = (await run(app, host, "solve", {"task": "loop", "max_steps": 2}, "legacy"))[0].structured_content
    assert out["stopped"] == "max_steps" and len(out["steps"]) == 2 and out["sampling_calls"] == 2


@pytest.mark.parametrize("era", ERAS)
async def test_a_failing_action_becomes_an_observed_error(app, era: str) -> None:
    host = ScriptedHost(act("generate"), act("count_tokens", text="hello"), act("final", answer="recovered"))
    out = (await run(app, host, "solve", {"task": "t"}, era))[0].structured_content
    assert "KeyError" in out["steps"][0]["error"] and out["steps"][0]["observation"] is None
    assert out["steps"][1]["observation"].isdigit(), "later steps replay their own observations"
    assert out["answer"] == "recovered"


async def test_declined_sampling_ends_the_tool_with_a_clear_message(app) -> None:
    result, _ = await run(app, ScriptedHost("DECLINE"), "solve", {"task": "t"}, "legacy")
    assert result.is_error and "declined a sampling request" in result.content[0].text


async def test_sampling_calls_are_bounded_by_the_setting(app, services: Services, settings) -> None:
    bounded = dataclasses.replace(services, settings=settings.model_copy(update={"max_sampling_calls": 2}))
    host = ScriptedHost(*[act("count_tokens", text="x")] * 5)
    result, _ = await run(create_app(settings, shared=bounded), host, "solve", {"task": "t", "max_steps": 5}, "legacy")
    assert result.is_error and "max_sampling_calls (2)" in result.content[0].text


@pytest.mark.parametrize("era", ERAS)
async def test_refine_drafts_with_our_engine_and_critiques_with_the_host(app, era: str) -> None:
    host = ScriptedHost("Too vague: name the city.", "Good; add the country.")
    args = {"prompt": "What is the capital of France?", "rounds": 2, "max_tokens": 24}
    out = (await run(app, host, "refine", args, era))[0].structured_content
    assert len(out["drafts"]) == 3 and out["critiques"] == ["Too vague: name the city.", "Good; add the country."]
    assert out["final"] == out["drafts"][-1] and "Paris" in out["drafts"][0]
    assert "Draft:\n" + out["drafts"][1] in host.requests[1].messages[0].content.text


@pytest.mark.parametrize("era", ERAS)
async def test_summarize_large_maps_with_our_engine_and_reduces_with_the_host(app, era: str) -> None:
    text = " ".join(f"Fact {i}: the river number {i} flows north." for i in range(120))
    host = ScriptedHost("All rivers flow north.")
    args = {"text": text, "instruction": "Which way do the rivers flow?", "chunk_tokens": 256, "summary_tokens": 16}
    out = (await run(app, host, "summarize_large", args, era))[0].structured_content
    assert out["chunks"] >= 5 and len(out["partial_summaries"]) == out["chunks"]
    assert out["summary"] == "All rivers flow north." and out["input_tokens"] > 256 * 4
    assert "Part 1:" in host.requests[0].messages[0].content.text


async def test_flow_bad_inputs(client: Client) -> None:
    both = await client.call_tool("summarize_large", {"instruction": "x", "text": "a", "uri": "model://config"})
    assert both.is_error and "exactly one of `text` or `uri`" in both.content[0].text
    steps = await client.call_tool("solve", {"task": "t", "max_steps": 0})
    assert steps.is_error and "max_steps" in steps.content[0].text


async def test_client_without_sampling_gets_a_clear_error(client: Client) -> None:
    result = await client.call_tool("solve", {"task": "t"})
    assert result.is_error and "does not support MCP sampling" in result.content[0].text
    assert "with --sampling-fallback to let" in result.content[0].text


async def test_fallback_lets_our_engine_reason_and_says_so(services: Services, settings) -> None:
    fallback = dataclasses.replace(services, settings=settings.model_copy(update={"sampling_fallback": True}))
    async with Client(create_app(settings, shared=fallback)) as client:
        out = await client.call_tool("solve", {"task": "How many tokens is 'hello world'?", "max_steps": 1})
    out = out.structured_content
    assert out["reasoner"] == "engine" and out["steps"] and out["stopped"] in {"final", "max_steps", "malformed"}
    assert all(s["action"] in ACTIONS or s["error"] for s in out["steps"])


@pytest.mark.parametrize("era", ERAS)
async def test_a_host_answering_with_our_real_engine_end_to_end(app, services: Services, era: str) -> None:
    """The host's model is played by our own engine (JSON-constrained): the whole loop runs for real."""

    async def engine_host(context, params: CreateMessageRequestParams) -> CreateMessageResult:
        chat = [ChatMessage(role="system", content=params.system_prompt)]
        chat += [ChatMessage(role=m.role, content=m.content.text) for m in params.messages]
        ids = services.engine.tokenize_chat(chat)
        options = SamplingOptions(max_tokens=params.max_tokens, temperature=0, json_schema=ACTION_SCHEMA)
        completion = await services.engine.generate(ids, options, f"host-{id(chat)}")
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=completion.text), model="smollm2-as-host"
        )

    args = {"task": "Find out how many tokens the text 'hello world' has, then answer.", "max_steps": 3}
    result, _ = await run(app, engine_host, "solve", args, era)
    out = result.structured_content
    assert not result.is_error, result.content
    assert out["reasoner"] == "host" and 1 <= len(out["steps"]) <= 3 and out["sampling_calls"] >= 1
    assert out["stopped"] in {"final", "max_steps", "malformed"}


FLOW_BAD_INPUTS = [
    ("solve", {"task": ""}, "task"),
    ("solve", {"task": "t", "max_steps": 21}, "max_steps"),
    ("refine", {"prompt": "p", "rounds": 0}, "rounds"),
    ("refine", {"prompt": "p", "max_tokens": 0}, "max_tokens"),
    ("refine", {"prompt": ""}, "prompt"),
    ("summarize_large", {"instruction": "x"}, "exactly one of `text` or `uri`"),
    ("summarize_large", {"instruction": "", "text": "a"}, "instruction"),
    ("summarize_large", {"instruction": "x", "text": "a", "chunk_tokens": 10}, "chunk_tokens"),
    ("summarize_large", {"instruction": "x", "text": "a", "summary_tokens": 5000}, "summary_tokens"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), FLOW_BAD_INPUTS)
async def test_flow_arguments_out_of_range_say_what_to_fix(app, tool: str, arguments: dict, message: str) -> None:
    result, _ = await run(app, ScriptedHost(), tool, arguments, "legacy")
    assert result.is_error and message in result.content[0].text


async def test_chunks_too_large_for_the_context_are_refused_with_the_limit(app) -> None:
    args = {"instruction": "x", "text": "a b c", "chunk_tokens": 4000, "summary_tokens": 128}
    result, _ = await run(app, ScriptedHost(), "summarize_large", args, "legacy")
    assert result.is_error and "use at most 1856" in result.content[0].text
