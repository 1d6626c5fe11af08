"""Tools `generate` and `count_tokens`: one request to the shared engine, and its token count."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.core.inference import parse_structured, prompt_token_ids, structured_validator
from mcp_llm.core.registry import adapters
from mcp_llm.schemas import ChatMessage, GenerateResult, SamplingOptions, TokenCount
from mcp_llm.server.tools.common import (
    AdapterArg,
    client_name,
    flat_sampling_options,
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
) -> GenerateResult:
    """Generate text with the served model.

    Give `messages` for a chat (the model's chat template is applied) or `prompt` for raw
    completion. Sampling options are top-level arguments (temperature 0 = deterministic).
    With `json_schema` the output is constrained to that schema and returned parsed too.
    With `adapter` a registered LoRA adapter shapes the answer (same engine, same batch as everyone else).
    Returns the text, why it stopped, token usage and timing (TTFT, total, tokens/s).
    """
    svc = services_of(ctx)
    validator = await structured_validator(sampling.json_schema)  # checked (no remote refs) off the loop
    token_ids = await prompt_token_ids(svc.engine, prompt, messages, svc.settings.max_input_chars)
    lora = adapters.resolve_adapter(svc, adapter, principal_of(ctx))
    client = client_name(ctx)
    completion = await svc.recorder.complete(
        token_ids, sampling, client=client, kind="generate", adapter=lora, priority=priority
    )
    parsed = await parse_structured(completion, sampling.json_schema, validator)
    return GenerateResult(**completion.model_dump(), model=svc.engine.model_name, parsed=parsed)


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
