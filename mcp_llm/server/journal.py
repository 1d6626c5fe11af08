"""The sampling journal (was mcp_llm/flows.py): how a flow asks the host's LLM (MCP sampling) and our engine acts.
The flow tools themselves (`solve`, `refine`, `summarize_large`, and `tune_serving`) live in server/tools/.

A flow is plain async code that calls `journal.sample(...)` (ask the reasoner) and `journal.act(...)`
(run our engine). The journal makes one flow run on every protocol version:

- 2025-11-25 and older: `sample` sends `sampling/createMessage` to the client mid-call.
- 2026-07-28: the server cannot call the client mid-request, so the tool returns an
  `InputRequiredResult` carrying the sampling request, and the client calls the tool again with the
  answer. The journal records every reply and action result in `request_state`; on each round the
  flow re-runs from the top, replaying recorded events (no engine work is repeated) until it needs
  one more answer.
- A client without the sampling capability: an error that says so, or, with `sampling_fallback`,
  our own engine reasons (actions constrained to JSON by structured output) and the result says so.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    InputRequiredResult,
    ModelHint,
    ModelPreferences,
    SamplingMessage,
    TextContent,
)

from mcp_llm.core.inference import prompt_token_ids
from mcp_llm.core.services import Services
from mcp_llm.errors import InputError
from mcp_llm.schema_guard import check_client_schema_async
from mcp_llm.schemas import ChatMessage, SamplingOptions
from mcp_llm.server.tools.common import client_name, services_of

R = TypeVar("R")

# Reasoning is what the host's model is for: prefer intelligence over speed or cost.
PREFERENCES = ModelPreferences(
    hints=[ModelHint(name="claude")], intelligence_priority=0.9, speed_priority=0.3, cost_priority=0.2
)


ENGINE_REPLY_TOKENS = 256


class NeedInput(Exception):
    """The flow needs an answer the client has not given yet (2026-07-28 round trip)."""

    def __init__(self, key: str, request: CreateMessageRequest) -> None:
        super().__init__(key)
        self.key, self.request = key, request


class Declined(Exception):
    """The host refused a sampling request (e.g. the user did not consent)."""


@dataclass
class Journal:
    """Recorded replies and action results, replayed in order; asks for what is new."""

    ctx: Context
    services: Services
    max_samples: int
    mode: str  # "live" (send sampling requests), "replay" (InputRequiredResult rounds) or "engine"
    events: list[Any] = field(default_factory=list)
    position: int = 0
    samples: int = 0

    @classmethod
    def open(cls, ctx: Context, services: Services) -> Journal:
        """The journal for this call: picks how to reach a reasoner, restores recorded events."""
        settings = services.settings
        can_sample = bool(ctx.client_capabilities and ctx.client_capabilities.sampling)
        if not can_sample:
            if not settings.sampling_fallback:
                raise InputError(
                    "This client does not support MCP sampling (it declared no `sampling` capability), which this "
                    "tool needs for the host's model to reason. Use a client that supports sampling, or start the "
                    "server with --sampling-fallback to let the served model reason instead."
                )
            mode = "engine"
        elif ctx.protocol_version and ctx.protocol_version >= "2026-07-28":
            mode = "replay"
        else:
            mode = "live"
        events = json.loads(ctx.request_state) if mode == "replay" and ctx.request_state else []
        return cls(ctx, services, settings.max_sampling_calls, mode, events)

    @property
    def reasoner(self) -> str:
        return "engine" if self.mode == "engine" else "host"

    def _next(self) -> tuple[bool, Any]:
        if self.position < len(self.events):
            self.position += 1
            return True, self.events[self.position - 1]
        return False, None

    def _record(self, value: Any) -> Any:
        self.events.append(value)
        self.position += 1
        return value

    async def act(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run engine work once; on replay rounds return its recorded (JSON) result."""
        recorded, value = self._next()
        return value if recorded else self._record(await work())

    async def sample(
        self, system: str, messages: list[tuple[str, str]], max_tokens: int, json_schema: dict | None = None
    ) -> str:
        """Ask the reasoner; `messages` are (role, text) pairs. Returns its text."""
        self.samples += 1
        if self.samples > self.max_samples:
            raise InputError(
                f"This call reached max_sampling_calls ({self.max_samples}); raise that setting or ask for fewer steps."
            )
        recorded, value = self._next()
        if recorded:
            return value
        if self.mode == "engine":
            return self._record(await self._engine_reply(system, messages, max_tokens, json_schema))
        params = CreateMessageRequestParams(
            messages=[
                SamplingMessage(role=role, content=TextContent(type="text", text=text)) for role, text in messages
            ],
            system_prompt=system,
            max_tokens=max_tokens,
            model_preferences=PREFERENCES,
            temperature=0.2,
        )
        if self.mode == "live":
            try:
                result = await self.ctx.session.create_message(
                    params.messages,
                    max_tokens=max_tokens,
                    system_prompt=system,
                    model_preferences=PREFERENCES,
                    temperature=0.2,
                    related_request_id=self.ctx.request_id,
                )
            except MCPError as exc:
                raise Declined(exc.error.message) from exc
            return self._record(_text_of(result))
        key = f"sample-{self.samples}"
        answer = (self.ctx.input_responses or {}).get(key)
        if answer is None:
            raise NeedInput(key, CreateMessageRequest(params=params))
        if not isinstance(answer, CreateMessageResult):
            raise Declined(f"the client answered {key} with {type(answer).__name__}, not a sampling result")
        return self._record(_text_of(answer))

    async def _engine_reply(
        self, system: str, messages: list[tuple[str, str]], max_tokens: int, json_schema: dict | None
    ) -> str:
        chat = [ChatMessage(role="system", content=system)] + [ChatMessage(role=r, content=t) for r, t in messages]
        # a small local model rambles: bound its replies tighter than a host model's
        options = SamplingOptions(
            max_tokens=min(max_tokens, ENGINE_REPLY_TOKENS), temperature=0, json_schema=json_schema
        )
        return await complete_text(self.services, self.ctx, chat, options)

    def suspend(self, need: NeedInput) -> InputRequiredResult:
        """The round trip result: the new sampling request, and every event so far as state."""
        return InputRequiredResult(input_requests={need.key: need.request}, request_state=json.dumps(self.events))


def json_object_in(reply: str) -> dict[str, Any]:
    """The JSON object in a reasoner's reply (text around it is ignored); ValueError says what is wrong."""
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object found")
    data = json.loads(reply[start : end + 1])
    if not isinstance(data, dict):
        raise ValueError("the reply is not a JSON object")
    return data


def _text_of(result: Any) -> str:
    content = result.content
    blocks = content if isinstance(content, list) else [content]
    return "".join(b.text for b in blocks if isinstance(b, TextContent))


async def complete_text(
    services: Services, ctx: Context, chat: list[ChatMessage] | str, options: SamplingOptions, kind: str = "flow"
) -> str:
    """One request to our engine (chat or raw text), recorded like any other (`summarize` chunks as bulk work, a
    flow's steps as interactive); returns the text."""
    if options.json_schema is not None:  # today only the server's own ACTION_SCHEMA; guarded all the same
        await check_client_schema_async(options.json_schema)
    prompt, messages = (chat, None) if isinstance(chat, str) else (None, chat)
    token_ids = await prompt_token_ids(services.engine, prompt, messages, services.settings.max_input_chars)
    completion = await services.recorder.complete(token_ids, options, client=client_name(ctx), kind=kind)
    return completion.text


async def run_flow(ctx: Context, flow: Callable[[Journal], Awaitable[R]]) -> R | InputRequiredResult:
    """Run a flow on this call's journal: its result, or the round trip that asks the client for more."""
    journal = Journal.open(ctx, services_of(ctx))
    try:
        return await flow(journal)
    except NeedInput as need:
        return journal.suspend(need)
    except Declined as exc:
        raise ToolError(
            f"The host declined a sampling request ({exc}); the task stopped and nothing was changed. "
            "Approve sampling for this server in your client to use this tool."
        ) from exc
