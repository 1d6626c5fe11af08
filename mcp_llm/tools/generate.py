"""Tools `generate` and `count_tokens`: one request to the shared engine, and its token count."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import jsonschema
from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.engine.base import EngineBackend
from mcp_llm.errors import InputError
from mcp_llm.schemas import ChatMessage, Completion, GenerateResult, SamplingOptions, TokenCount
from mcp_llm.tools.common import flat_sampling_options, services, tool_errors

PromptArg = Annotated[str | None, Field(description="Raw text to continue (no chat template). Give this or messages.")]
MessagesArg = Annotated[
    list[ChatMessage] | None,
    Field(description="A chat; the model's chat template is applied. Give this or prompt."),
]


def prompt_token_ids(engine: EngineBackend, prompt: str | None, messages: list[ChatMessage] | None) -> list[int]:
    """Token ids for exactly one of a raw prompt or a chat; says what to fix otherwise."""
    if (prompt is None) == (messages is None):
        raise InputError("Give exactly one of `prompt` (raw text) or `messages` (a chat), not both or neither.")
    if messages is not None:
        if not messages:
            raise InputError("`messages` is empty: give at least one message, e.g. {'role': 'user', 'content': ...}.")
        return engine.tokenize_chat(messages)
    if not prompt:
        raise InputError("`prompt` is empty: give the text to continue.")
    return engine.tokenize_text(prompt)


def check_json_schema(schema: dict | None) -> None:
    """Reject a json_schema that is not a valid JSON Schema, before any token is spent."""
    if schema is None:
        return
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputError(f"`json_schema` is not a valid JSON Schema: {exc.message} (at {list(exc.path)}).") from exc


def parse_structured(completion: Completion, schema: dict) -> object:
    """The output parsed and validated against the schema; says why when it cannot be."""
    try:
        value = json.loads(completion.text)
        jsonschema.validate(value, schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        hint = " The output was cut at max_tokens: raise max_tokens." if completion.finish_reason == "length" else ""
        raise InputError(f"The output does not satisfy json_schema ({exc}).{hint} Output: {completion.text!r}") from exc
    return value


@flat_sampling_options
@tool_errors
async def generate(
    ctx: Context,
    sampling: SamplingOptions,
    prompt: PromptArg = None,
    messages: MessagesArg = None,
) -> GenerateResult:
    """Generate text with the served model.

    Give `messages` for a chat (the model's chat template is applied) or `prompt` for raw
    completion. Sampling options are top-level arguments (temperature 0 = deterministic).
    With `json_schema` the output is constrained to that schema and returned parsed too.
    Returns the text, why it stopped, token usage and timing (TTFT, total, tokens/s).
    """
    svc = services(ctx)
    check_json_schema(sampling.json_schema)
    token_ids = prompt_token_ids(svc.engine, prompt, messages)
    completion = await svc.engine.generate(token_ids, sampling, uuid.uuid4().hex)
    parsed = parse_structured(completion, sampling.json_schema) if sampling.json_schema is not None else None
    return GenerateResult(**completion.model_dump(), model=svc.engine.model_name, parsed=parsed)


@tool_errors
async def count_tokens(ctx: Context, prompt: PromptArg = None, messages: MessagesArg = None) -> TokenCount:
    """Count the tokens a prompt or chat takes with the served model, and what the context leaves.

    For `messages` the count includes the chat template, exactly as `generate` would send it.
    """
    engine = services(ctx).engine
    tokens = len(prompt_token_ids(engine, prompt, messages))
    limit = engine.max_model_len
    return TokenCount(tokens=tokens, max_model_len=limit, remaining=max(0, limit - tokens), fits=tokens < limit)


TOOLS = [generate, count_tokens]
