"""One request from input to recorded result: tokenize, generate, check structured output, record.

Shared by `generate` and every batch item, so both validate, measure and log the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
import jsonschema
from jsonschema.protocols import Validator

from mcp_llm import schema_guard
from mcp_llm.core import access
from mcp_llm.core.limits import InflightLimiter
from mcp_llm.core.metrics import Metrics
from mcp_llm.core.quotas import Quotas
from mcp_llm.core.store import Store
from mcp_llm.engine.base import Adapter, EngineBackend, routing_key
from mcp_llm.errors import InputError
from mcp_llm.schemas import ChatMessage, Completion, SamplingOptions

OFF_LOOP_CHARS = 50_000  # inputs longer than this are tokenized in a worker thread (the event loop keeps serving)


def check_size(chars: int, limit: int | None, what: str) -> None:
    """InputError when an input of `chars` characters is over `limit` (setting max_input_chars)."""
    if limit is not None and chars > limit:
        raise InputError(
            f"{what} has {chars:,} characters, over the limit of {limit:,} (setting max_input_chars): send less, or "
            "split it (summarize_large reads long inputs chunk by chunk)."
        )


def prompt_input(
    prompt: str | None, messages: list[ChatMessage] | None, tools: list[dict] | None = None
) -> str | list[ChatMessage]:
    """The one input a request has, a raw prompt or a chat; says what to fix otherwise (neither or both, empty,
    tools with a raw prompt)."""
    if (prompt is None) == (messages is None):
        raise InputError("Give exactly one of `prompt` (raw text) or `messages` (a chat), not both or neither.")
    if messages is not None:
        if not messages:
            raise InputError("`messages` is empty: give at least one message, e.g. {'role': 'user', 'content': ...}.")
        return messages
    if tools:
        raise InputError("`tools` need `messages` (a chat): the model's chat template is what shows it the tools.")
    if not prompt:
        raise InputError("`prompt` is empty: give the text to continue.")
    return prompt


async def prompt_token_ids(
    engine: EngineBackend,
    prompt: str | None,
    messages: list[ChatMessage] | None,
    max_chars: int | None = None,
    tools: list[dict] | None = None,
) -> list[int]:
    """Token ids for exactly one of a raw prompt or a chat (with `tools` shown to templates that show them),
    tokenized off the event loop when large; says what to fix otherwise (see prompt_input; over `max_chars`)."""
    value = prompt_input(prompt, messages, tools)
    if isinstance(value, str):
        check_size(len(value), max_chars, "`prompt`")
        return await _tokenize(len(value), engine.tokenize_text, value)
    chars = sum(len(m.content or "") for m in value)
    check_size(chars, max_chars, "`messages`")
    return await _tokenize(chars, lambda turns: engine.tokenize_chat(turns, tools), value)


async def _tokenize(chars: int, tokenize: Callable[[Any], list[int]], value: Any) -> list[int]:
    if chars < OFF_LOOP_CHARS:
        return tokenize(value)
    return await anyio.to_thread.run_sync(tokenize, value)


async def structured_validator(schema: dict | None) -> Validator | None:
    """The checked schema's validator (no retrieval), compiled off the event loop; None without a schema."""
    return None if schema is None else await schema_guard.validator_for_async(schema)


def _parse(completion: Completion, schema: dict, validator: Validator | None) -> object:
    try:
        value = json.loads(completion.text)
        schema_guard.validate(validator or schema_guard.validator_for(schema), value)
    except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
        hint = " The output was cut at max_tokens: raise max_tokens." if completion.finish_reason == "length" else ""
        raise InputError(f"The output does not satisfy json_schema ({exc}).{hint} Output: {completion.text!r}") from exc
    return value


async def parse_structured(
    completion: Completion, schema: dict | None, validator: Validator | None = None
) -> object | None:
    """The output parsed and validated against the schema (None without one); says why when it fails.
    Validation (and compiling the schema, unless `validator` is given) runs off the event loop."""
    if schema is None:
        return None
    return await anyio.to_thread.run_sync(_parse, completion, schema, validator)


# vLLM's priority policy runs lower values first: interactive calls (an agent waits on each) ahead of bulk work.
PRIORITY = {"interactive": 0, "bulk": 10}
BULK_KINDS = frozenset({"batch", "benchmark", "summarize"})


def priority_of(kind: str, asked: str | None = None) -> int:
    """The scheduler priority of a request: what the call asked for, else by its kind."""
    return PRIORITY[asked or ("bulk" if kind in BULK_KINDS else "interactive")]


class Recorder:
    """The one path of every engine call: admits it (routing key, in-flight bounds), runs it on the engine and
    records it in the metrics and the request log."""

    def __init__(
        self,
        engine: EngineBackend,
        metrics: Metrics,
        store: Store,
        log_text: bool = False,
        salt_for: Callable[[str], str | None] | None = None,
        limiter: InflightLimiter | None = None,
        quotas: Quotas | None = None,
        prioritize: bool = True,
    ) -> None:
        self.engine, self.metrics, self.store, self.log_text = engine, metrics, store, log_text
        self.salt_for = salt_for or (lambda client: None)  # the client's prefix-cache tenant (tenancy.py)
        self.limiter = limiter or InflightLimiter(1 << 30, 1 << 30)
        self.quotas = quotas
        self.prioritize = prioritize  # the engine schedules by priority (a non-zero one is an error under fcfs)

    @contextmanager
    def admitted(self, client: str, kind: str, job_id: str | None = None) -> Iterator[None]:
        """Admit one engine call (generate, a flow's step, embed; a job's item; a benchmark's request): the routing
        key keeps a job's items, or a client's calls, on one replica behind a session-routing router; interactive
        calls pass the caller's token quotas and take an in-flight slot, or fail at once (quota, busy). Job items
        are bounded by their job (quotas checked when it was accepted, max_batch_items) and a benchmark by its own
        concurrency levels, so neither takes a slot."""
        routing_key.set(job_id or client)
        if job_id is not None or kind == "benchmark":
            yield
            return
        if self.quotas is not None and (principal := access.caller.get()) is not None:
            self.quotas.check_tokens(principal)
        with self.limiter.slot(client):
            yield

    async def complete(
        self,
        token_ids: list[int],
        sampling: SamplingOptions,
        *,
        client: str,
        kind: str,
        job_id: str | None = None,
        adapter: Adapter | None = None,
        priority: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """Generate (scheduled by `priority`, "interactive" or "bulk", else by `kind`; streamed to `on_text` when
        given), then record (errors too, cancellations as `cancelled`)."""
        row = {
            "client": client,
            "kind": kind,
            "job_id": job_id,
            "model": self.engine.model_name,
            "prompt_tokens": len(token_ids),
        }
        try:
            with self.admitted(client, kind, job_id):
                salt = self.salt_for(client)
                order = priority_of(kind, priority) if self.prioritize else 0
                request_id = uuid.uuid4().hex
                completion = await self.engine.generate(token_ids, sampling, request_id, adapter, salt, order, on_text)
        except BaseException as exc:
            status = "error" if isinstance(exc, Exception) else "cancelled"
            self.metrics.observe_error(status)
            self.store.log_request({**row, "status": status, "error": str(exc)[:500] or type(exc).__name__})
            raise
        # the model that ran it (a swap may have happened while it waited), with its adapter
        row["model"] = self.engine.model_name + (f"+{adapter.name}" if adapter else "")
        self.metrics.observe(completion, client)
        self.store.log_request(
            {
                **row,
                "status": "ok",
                "completion_tokens": completion.usage.completion_tokens,
                "ttft_ms": completion.timing.ttft_ms,
                "total_ms": completion.timing.total_ms,
                **self._texts(token_ids, completion),
            }
        )
        return completion

    def _texts(self, token_ids: list[int], completion: Completion) -> dict:
        if not self.log_text:
            return {}
        return {"prompt": self.engine.detokenize(token_ids), "completion": completion.text}
