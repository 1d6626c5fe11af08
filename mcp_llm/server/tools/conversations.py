"""Tools `chat`, `fork_conversation` and `delete_conversation`: multi-turn conversations the server keeps."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.core.conversations import Conversations, take_turn
from mcp_llm.core.registry import adapters
from mcp_llm.schemas import SamplingOptions
from mcp_llm.server.schemas import ChatResult, Forked
from mcp_llm.server.tools.common import AdapterArg, flat_sampling_options, principal_of, services_of, tool_errors

ConversationArg = Annotated[str, Field(description="A conversation of yours (from `chat`).")]


@flat_sampling_options
@tool_errors
async def chat(
    ctx: Context,
    sampling: SamplingOptions,
    message: Annotated[str, Field(description="Your next message (the user turn).")],
    conversation_id: Annotated[
        str | None, Field(description="Continue this conversation; leave out to start a new one.")
    ] = None,
    system: Annotated[str | None, Field(description="A system prompt, when starting a conversation.")] = None,
    adapter: AdapterArg = None,
    include_reasoning: Annotated[
        bool, Field(description="Return the model's reasoning (with the server's --reasoning-parser).")
    ] = False,
) -> ChatResult:
    """Talk with the served model in a conversation the server keeps (owned by you, in SQLite).

    Each turn sends the whole thread through the chat template, so vLLM's prefix cache serves the earlier
    turns: `usage.cached_tokens` says how many. A thread longer than the context is cut from its oldest turns
    for that request, and `notes` says so. Read the thread at conversations://{conversation_id}.
    """
    svc = services_of(ctx)
    caller = principal_of(ctx)
    lora = adapters.resolve_adapter(svc, adapter, caller)
    turn = await take_turn(svc, caller, message, sampling, conversation_id, system, lora)
    done = turn.completion
    return ChatResult(
        conversation_id=turn.conversation_id,
        turn=turn.turn,
        text=done.text,
        finish_reason=done.finish_reason,
        usage=done.usage,
        timing=done.timing,
        dropped_turns=turn.dropped,
        notes=turn.notes,
        reasoning=turn.reasoning if include_reasoning else None,
    )


@tool_errors
async def fork_conversation(
    ctx: Context,
    conversation_id: ConversationArg,
    turns: Annotated[int | None, Field(ge=0, description="Copy the first N turns (default: all).")] = None,
) -> Forked:
    """Start a new conversation from one of yours: a copy of its turns (all, or the first `turns`), to try
    another path without changing the original."""
    svc = services_of(ctx)
    kept = Conversations(svc.store)
    copy = kept.fork(conversation_id, principal_of(ctx), turns)
    return Forked(conversation_id=copy, forked_from=conversation_id, turns=len(kept.turns(copy)))


@tool_errors
async def delete_conversation(ctx: Context, conversation_id: ConversationArg) -> dict[str, int | str]:
    """Delete one of your conversations and its turns."""
    gone = Conversations(services_of(ctx).store).delete(conversation_id, principal_of(ctx))
    return {"deleted": conversation_id, "turns": gone}


TOOLS = [chat, fork_conversation, delete_conversation]
