"""vLLM's tool-call and reasoning parsers, run on a finished completion's text (`--tool-call-parser hermes`,
`--reasoning-parser deepseek_r1`, ...): the same parsers `vllm serve` uses, so a model's native formats
are read exactly as vLLM reads them, for the in-process engine and a remote one alike.

Some think-tag parsers look their tags up as single tokens at construction and refuse a tokenizer that
lacks them, though they split the text by the tag strings: a model that writes the tags as plain text (a
small model taught them by an adapter) gets the parser with those lookups answered by a token id that
never occurs, so the text split still runs.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

from mcp_llm.errors import InputError

NO_SUCH_TOKEN = -1


class _AnyTag(dict):
    """A vocabulary in which every string is known (those the tokenizer lacks as `NO_SUCH_TOKEN`)."""

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(key, NO_SUCH_TOKEN)

    def __missing__(self, key: Any) -> int:
        return NO_SUCH_TOKEN


class _TextTags:
    """A tokenizer whose vocabulary knows every tag string (see the module's docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def get_vocab(self) -> dict[str, int]:
        return _AnyTag(self._tokenizer.get_vocab())


def tool_parser_names() -> list[str]:
    from vllm.tool_parsers import ToolParserManager

    return sorted(ToolParserManager.list_registered())


def reasoning_parser_names() -> list[str]:
    from vllm.reasoning import ReasoningParserManager

    return sorted(ReasoningParserManager.list_registered())


def check_parser(kind: str, name: str | None) -> None:
    """A setting's parser name is one vLLM has (ValueError listing them otherwise)."""
    if name is None:
        return
    names = tool_parser_names() if kind == "tool" else reasoning_parser_names()
    if name not in names:
        raise ValueError(f"vLLM has no {kind} parser {name!r}; it has: {', '.join(names)}")


def _request(tools: list[dict] | None) -> Any:
    """The chat request the parsers read (only its tools matter to them)."""
    try:
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    except ImportError:  # vLLM 0.26 (the GPU build)
        from vllm.entrypoints.openai.protocol import ChatCompletionRequest
    return ChatCompletionRequest(
        messages=[], model="served", tools=tools or None, tool_choice="auto" if tools else None
    )


@functools.lru_cache(maxsize=8)
def _reasoning_parser(name: str, tokenizer: Any) -> Any:
    from vllm.reasoning import ReasoningParserManager

    try:
        parser = ReasoningParserManager.get_reasoning_parser(name)
    except KeyError as exc:
        raise InputError(
            f"The server's --reasoning-parser {name!r} is not one of vLLM's: {reasoning_parser_names()}"
        ) from exc
    try:
        return parser(tokenizer)
    except RuntimeError:  # its tags are not single tokens of this tokenizer: split by the tag strings
        return parser(_TextTags(tokenizer))


class Parsing:
    """Tool calls and reasoning read out of a completion's text by vLLM's parsers (mixed into the backends,
    which hold the served model's tokenizer in `self._tokenizer`)."""

    _tokenizer: Any

    def tool_calls_in(self, parser_name: str, text: str, tools: list[dict]) -> tuple[list[dict], str]:
        """The calls the text makes ([{id, name, arguments}], arguments parsed) and the text around them."""
        from vllm.tool_parsers import ToolParserManager

        try:
            parser = ToolParserManager.get_tool_parser(parser_name)(self._tokenizer)
        except KeyError as exc:
            raise InputError(
                f"The server's --tool-call-parser {parser_name!r} is not one of vLLM's: {tool_parser_names()}"
            ) from exc
        found = parser.extract_tool_calls(text, _request(tools))
        if not found.tools_called:
            return [], text
        calls = []
        for call in found.tool_calls:
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"The model called {call.function.name!r} with arguments that are not JSON: {exc}"
                ) from exc
            calls.append(
                {"id": call.id or f"call_{uuid.uuid4().hex[:24]}", "name": call.function.name}
                | {"arguments": arguments}
            )
        return calls, found.content or ""

    def reasoning_in(self, parser_name: str, text: str) -> tuple[str | None, str]:
        """The text's reasoning (None when it has none) and its answer, split as vLLM's parser splits them."""
        reasoning, content = _reasoning_parser(parser_name, self._tokenizer).extract_reasoning(text, _request(None))
        return reasoning, content or ""
