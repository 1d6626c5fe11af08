"""Tools `generate` and `count_tokens`: one request to the shared engine, and its token count."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.core.inference import prompt_token_ids
from mcp_llm.core.registry import adapters
from mcp_llm.schemas import ChatMessage, GenerateResult, SamplingOptions, TokenCount
from mcp_llm.server.tools.common import (
    AdapterArg,
    IncludeReasoningArg,
    PickArg,
    ToolChoiceArg,
    ToolsArg,
    client_name,
    flat_sampling_options,
    live_text,
    principal_of,
    services_of,
    tool_errors,
)

PromptArg = Annotated[str | None, Field(description="Raw text to continue (no chat template). Give this or messages.")]
MessagesArg = Annotated[
    list[ChatMessage] | None,
    Field(description="A chat; the model's chat template is applied. Give this or prompt."),
]


@flat_sampling_options
@tool_errors
async def generate(
    ctx: Context,
    sampling: SamplingOptions,
    prompt: PromptArg = None,
    messages: MessagesArg = None,
    adapter: AdapterArg = None,
    priority: Annotated[
        Literal["interactive", "bulk"] | None,
        Field(description="Scheduling: interactive (default) goes ahead of bulk work; bulk yields to others' calls."),
    ] = None,
    tools: ToolsArg = None,
    tool_choice: ToolChoiceArg = None,
    include_reasoning: IncludeReasoningArg = False,
    pick: PickArg = "first",
) -> GenerateResult:
    """Generate text with the served model.

    Give `messages` for a chat (the model's chat template is applied) or `prompt` for raw
    completion. Sampling options are top-level arguments (temperature 0 = deterministic).
    Structured output (one mode at most): `json_schema` (returned parsed too), `choice`, `regex` or `grammar`.
    With `tools` the model may call functions: `tool_calls` holds each call with its arguments checked against
    the tool's schema; answer with an assistant turn carrying those `tool_calls` and a `tool` turn per result.
    `logprobs` returns token log-probabilities and a `confidence` summary; `n` draws several samples.
    With the server's --reasoning-parser, reasoning never appears in `text` (`include_reasoning` returns it).
    With `adapter` a registered LoRA adapter shapes the answer (same engine, same batch as everyone else).
    Called with a progress token, the answer's text so far arrives in progress messages as it grows.
    Returns the text, why it stopped, token usage and timing (TTFT, total, tokens/s).
    """
    svc = services_of(ctx)
    settings = svc.settings
    plan = await svc.answering(sampling, tools, tool_choice, pick, include_reasoning)
    token_ids = await prompt_token_ids(svc.engine, prompt, messages, settings.max_input_chars, plan.templated_tools)
    lora = adapters.resolve_adapter(svc, adapter, principal_of(ctx))
    client = client_name(ctx)
    async with live_text(ctx, settings.progress_interval_s) as on_text:
        completion = await svc.recorder.complete(
            token_ids, plan.sampling, client=client, kind="generate", adapter=lora, priority=priority, on_text=on_text
        )
    done = await plan.finish(svc.engine, completion)
    fields = done.completion.model_dump() | {"reasoning": done.reasoning}
    return GenerateResult(**fields, model=svc.engine.model_name, parsed=done.parsed, tool_calls=done.tool_calls)


@tool_errors
async def count_tokens(ctx: Context, prompt: PromptArg = None, messages: MessagesArg = None) -> TokenCount:
    """Count the tokens a prompt or chat takes with the served model, and what the context leaves.

    For `messages` the count includes the chat template, exactly as `generate` would send it.
    """
    svc = services_of(ctx)
    engine = svc.engine
    tokens = len(await prompt_token_ids(engine, prompt, messages, svc.settings.max_input_chars))
    limit = engine.max_model_len
    return TokenCount(tokens=tokens, max_model_len=limit, remaining=max(0, limit - tokens), fits=tokens < limit)


TOOLS = [generate, count_tokens]
