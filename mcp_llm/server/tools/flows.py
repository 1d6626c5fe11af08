"""Tools `solve`, `refine`, `summarize_large`: the host's model reasons through MCP sampling, our engine acts."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp_types import InputRequiredResult
from pydantic import Field

from mcp_llm.core.inference import check_size
from mcp_llm.errors import InputError
from mcp_llm.schemas import ChatMessage, FlowStep, RefineResult, SamplingOptions, SolveResult, SummaryResult
from mcp_llm.server.journal import Journal, complete_text, json_object_in, run_flow
from mcp_llm.server.tools.common import services_of, tool_errors

R = TypeVar("R")
OBSERVATION_CHARS = 2000
ACTIONS = {
    "generate": '{"prompt": str, "max_tokens": int <= 512} -> the local model\'s answer to one prompt',
    "batch": '{"prompts": [str, ...] (<= 32), "max_tokens": int <= 512} -> one answer per prompt, run together',
    "count_tokens": '{"text": str} -> how many tokens the local model sees',
    "read_resource": '{"uri": "model://config" | "metrics://engine" | "jobs://<id>"} -> the resource text',
    "final": '{"answer": str} -> ends the task with this answer',
}
SOLVE_SYSTEM = (
    "You solve a task step by step. You think; a small local LLM server acts for you. Each turn, reply with "
    'ONE JSON object and nothing else: {"thought": "...", "action": "<name>", "input": {...}}. Actions:\n'
    + "\n".join(f"- {name} {spec}" for name, spec in ACTIONS.items())
    + "\nAfter each action you get an Observation. Use `final` as soon as you can answer."
)
ACTION_SCHEMA = {
    "type": "object",
    "properties": {"thought": {"type": "string"}, "action": {"enum": list(ACTIONS)}, "input": {"type": "object"}},
    "required": ["thought", "action", "input"],
}
MENTOR_SYSTEM = "You are a demanding mentor. Critique the draft: errors, gaps, unclear parts. Be specific and brief."
REDUCE_SYSTEM = "You combine partial summaries of one long document into a single faithful answer."


def parse_action(reply: str) -> tuple[str | None, str, dict[str, Any]]:
    """(thought, action, input) from a reply; ValueError says what is wrong with it."""
    data = json_object_in(reply)
    action, payload = data.get("action"), data.get("input") or {}
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    if not isinstance(payload, dict):
        raise ValueError("`input` must be a JSON object")
    return data.get("thought"), action, payload


async def perform(ctx: Context, action: str, payload: dict[str, Any]) -> str:
    """Run one action on our engine (or read a resource); the observation as text."""
    svc = services_of(ctx)
    max_tokens = max(1, min(int(payload.get("max_tokens", 256)), 512))
    options = SamplingOptions(max_tokens=max_tokens, temperature=0)
    if action == "generate":
        return await complete_text(svc, ctx, [ChatMessage(role="user", content=str(payload["prompt"]))], options)
    if action == "batch":
        prompts = [str(p) for p in payload["prompts"]][:32]
        outputs = await asyncio.gather(
            *(complete_text(svc, ctx, [ChatMessage(role="user", content=p)], options) for p in prompts)
        )
        return json.dumps(outputs)
    if action == "count_tokens":
        return str(len(svc.engine.tokenize_text(str(payload["text"]))))
    contents = await ctx.read_resource(str(payload["uri"]))
    return "\n".join(c.content if isinstance(c.content, str) else "<binary>" for c in contents)


async def observe(ctx: Context, action: str, payload: dict[str, Any]) -> list[str | None]:
    """[observation, error] of one action; a failing action is an observation for the reasoner, not a crash
    (and, recorded like a success, it replays the same on every 2026-07-28 round)."""
    try:
        return [(await perform(ctx, action, payload))[:OBSERVATION_CHARS], None]
    except (KeyError, TypeError, ValueError, InputError) as exc:
        return [None, f"{type(exc).__name__}: {exc}"]


async def react(ctx: Context, journal: Journal, task: str, max_steps: int) -> SolveResult:
    """The ReAct loop: the reasoner picks actions, our engine performs them, until `final` or max_steps."""
    conversation: list[tuple[str, str]] = [("user", f"Task: {task}")]
    steps: list[FlowStep] = []

    def result(answer: str | None, stopped: str) -> SolveResult:
        return SolveResult(
            answer=answer, stopped=stopped, steps=steps, reasoner=journal.reasoner, sampling_calls=journal.samples
        )

    for number in range(1, max_steps + 1):
        reply = await journal.sample(SOLVE_SYSTEM, conversation, 600, ACTION_SCHEMA)
        try:
            thought, action, payload = parse_action(reply)
        except (ValueError, json.JSONDecodeError) as exc:  # one corrective re-ask, then stop
            conversation += [
                ("assistant", reply),
                ("user", f"That reply was not usable: {exc}. Reply with one JSON object only, in the format given."),
            ]
            reply = await journal.sample(SOLVE_SYSTEM, conversation, 600, ACTION_SCHEMA)
            try:
                thought, action, payload = parse_action(reply)
            except (ValueError, json.JSONDecodeError) as again:
                steps.append(FlowStep(error=f"unusable reply twice ({exc}; then {again}): {reply[:300]!r}"))
                return result(None, "malformed")
        await ctx.report_progress(number, max_steps, f"step {number}: {action}")
        if action == "final":
            steps.append(FlowStep(thought=thought, action=action, input=payload))
            return result(str(payload.get("answer", "")), "final")
        observation, error = await journal.act(lambda action=action, payload=payload: observe(ctx, action, payload))
        steps.append(FlowStep(thought=thought, action=action, input=payload, observation=observation, error=error))
        conversation += [("assistant", reply), ("user", f"Observation: {observation if error is None else error}")]
    return result(None, "max_steps")


@tool_errors
async def solve(
    ctx: Context,
    task: Annotated[str, Field(min_length=1, description="What to do, in plain words.")],
    max_steps: Annotated[int, Field(ge=1, le=20, description="Most reason-act steps.")] = 6,
) -> SolveResult | InputRequiredResult:
    """Solve a task with ReAct: your model reasons (via MCP sampling), the local engine acts.

    Each step asks your model for a thought and one action (generate, batch, count_tokens,
    read_resource, final); the local engine performs it and the observation goes into the next
    step. Returns the answer and the full trace. Needs a client that supports sampling.
    """
    return await run_flow(ctx, lambda journal: react(ctx, journal, task, max_steps))


@tool_errors
async def refine(
    ctx: Context,
    prompt: Annotated[str, Field(min_length=1, description="What to write.")],
    rounds: Annotated[int, Field(ge=1, le=5, description="Critique-and-revise rounds.")] = 2,
    max_tokens: Annotated[int, Field(ge=1, le=2048, description="Most tokens per draft.")] = 400,
) -> RefineResult | InputRequiredResult:
    """Draft with the local engine, critique with your model (mentor), revise with the local engine.

    Returns every draft and critique and the final text. Needs a client that supports sampling.
    """

    async def flow(journal: Journal) -> RefineResult:
        svc = services_of(ctx)
        options = SamplingOptions(max_tokens=max_tokens, temperature=0)
        drafts: list[str] = []
        critiques: list[str] = []
        chat = [ChatMessage(role="user", content=prompt)]
        drafts.append(await journal.act(lambda: complete_text(svc, ctx, chat, options)))
        for number in range(rounds):
            await ctx.report_progress(number, rounds, f"critique {number + 1}")
            critique = await journal.sample(
                MENTOR_SYSTEM, [("user", f"Prompt:\n{prompt}\n\nDraft:\n{drafts[-1]}\n\nCritique this draft.")], 400
            )
            critiques.append(critique)
            revise = [
                *chat,
                ChatMessage(role="assistant", content=drafts[-1]),
                ChatMessage(role="user", content=f"Revise your answer using this critique:\n{critique}"),
            ]
            drafts.append(await journal.act(lambda revise=revise: complete_text(svc, ctx, revise, options)))
        return RefineResult(drafts=drafts, critiques=critiques, final=drafts[-1], reasoner=journal.reasoner)

    return await run_flow(ctx, flow)


@tool_errors
async def summarize_large(
    ctx: Context,
    instruction: Annotated[str, Field(min_length=1, description="What to extract or answer from the input.")],
    text: Annotated[str | None, Field(description="The input text. Give this or uri.")] = None,
    uri: Annotated[str | None, Field(description="A resource to read as input. Give this or text.")] = None,
    chunk_tokens: Annotated[int, Field(ge=64, le=4096, description="Tokens per chunk for the map step.")] = 512,
    summary_tokens: Annotated[int, Field(ge=16, le=1024, description="Tokens per partial summary.")] = 128,
) -> SummaryResult | InputRequiredResult:
    """Analyse an input larger than any context: the local engine summarizes each chunk (map, in one
    batch), your model combines the partial summaries (reduce). Needs a client that supports sampling.
    """
    if (text is None) == (uri is None):
        raise InputError("Give exactly one of `text` or `uri`.")

    async def flow(journal: Journal) -> SummaryResult:
        svc = services_of(ctx)
        source = text if text is not None else await journal.act(lambda: perform(ctx, "read_resource", {"uri": uri}))
        check_size(len(source), svc.settings.max_input_chars, "The input")
        ids = await anyio.to_thread.run_sync(svc.engine.tokenize_text, source)  # off the event loop: it can be large
        room = svc.engine.max_model_len - summary_tokens - 64
        if chunk_tokens > room:
            raise InputError(
                f"chunk_tokens ({chunk_tokens}) leaves no room in the {svc.engine.max_model_len}-token "
                f"context for the instruction and a {summary_tokens}-token summary: use at most {room}."
            )
        spans = [ids[i : i + chunk_tokens] for i in range(0, len(ids), chunk_tokens)]
        chunks = await anyio.to_thread.run_sync(lambda: [svc.engine.detokenize(span) for span in spans])
        options = SamplingOptions(max_tokens=summary_tokens, temperature=0)

        fan_out = asyncio.Semaphore(svc.settings.max_inflight_per_client)  # the client's own in-flight bound

        async def summarize(i: int, chunk: str) -> str:
            ask = f"{instruction}\n\nThis is part {i + 1} of {len(chunks)} of a longer text:\n\n{chunk}"
            async with fan_out:
                return await complete_text(svc, ctx, [ChatMessage(role="user", content=ask)], options, "summarize")

        partials = await journal.act(lambda: asyncio.gather(*(summarize(i, c) for i, c in enumerate(chunks))))
        await ctx.report_progress(len(chunks), len(chunks) + 1, f"{len(chunks)} chunks summarized; combining")
        listing = "\n\n".join(f"Part {i + 1}: {p}" for i, p in enumerate(partials))
        summary = await journal.sample(REDUCE_SYSTEM, [("user", f"{instruction}\n\n{listing}")], 800)
        return SummaryResult(
            chunks=len(chunks),
            input_tokens=len(ids),
            partial_summaries=list(partials),
            summary=summary,
            reasoner=journal.reasoner,
        )

    return await run_flow(ctx, flow)


TOOLS = [solve, refine, summarize_large]
