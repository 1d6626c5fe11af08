"""Tool calling through the served model, as vLLM's OpenAI server does it.

`required` and a named tool work on every model: the output is constrained (structured outputs) to a call
of one of the tools — a JSON list of `{"name", "parameters"}` — or to the named tool's arguments. `auto`
lets the model choose, and reads its native call format with the tool-call parser a setting names
(`--tool-call-parser hermes`, ...). Every call is checked against its tool's parameters schema (no
retrieval: see schema_guard) before it is returned.
"""

from __future__ import annotations

import difflib
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from mcp_llm import schema_guard
from mcp_llm.errors import InputError
from mcp_llm.schemas import SamplingOptions, ToolCall

MAX_TOOLS = 128
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MODES = ("auto", "none", "required")


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Letters, digits, _ . - (at most 64).")
    description: str | None = Field(None, max_length=4096)
    parameters: dict[str, Any] | None = Field(None, description="A JSON Schema for the arguments (an object).")


class ToolSpec(BaseModel):
    """One tool the model may call, in OpenAI's shape: {"type": "function", "function": {...}}."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"] = "function"
    function: FunctionSpec


@dataclass
class ToolUse:
    """The tools of one request and how the model may use them."""

    tools: list[ToolSpec]
    choice: str  # auto, none, required, or a tool's name
    parser: str | None  # the server's --tool-call-parser
    validators: dict[str, Any]

    @property
    def templated(self) -> list[dict]:
        """The tools as chat templates and vLLM's parsers take them."""
        return [tool.model_dump(exclude_none=True) for tool in self.tools]

    def constrain(self, sampling: SamplingOptions) -> SamplingOptions:
        """`sampling` with the output constrained to a call (required, a named tool); unchanged otherwise."""
        if self.choice in ("auto", "none"):
            return sampling
        if sampling.constrained:
            raise InputError(
                f"tool_choice {self.choice!r} constrains the output to a tool call itself: leave out json_schema, "
                "choice, regex and grammar (or use tool_choice `auto`)."
            )
        return sampling.model_copy(update={"json_schema": self._call_schema()})

    def _call_schema(self) -> dict[str, Any]:
        if self.choice != "required":
            return self._parameters(self.choice)
        calls = [
            {
                "type": "object",
                "properties": {"name": {"const": t.function.name}, "parameters": self._parameters(t.function.name)},
                "required": ["name", "parameters"],
            }
            for t in self.tools
        ]
        return {"type": "array", "minItems": 1, "items": {"anyOf": calls}}

    def _parameters(self, name: str) -> dict[str, Any]:
        spec = next(t.function for t in self.tools if t.function.name == name)
        return spec.parameters or {"type": "object", "properties": {}}

    def calls(self, parsed: Any, text: str, found: list[dict] | None = None) -> tuple[list[ToolCall], str]:
        """The calls in a finished answer — `parsed` (the constrained JSON) for required or a named tool,
        `found` (the parser's) for auto — each checked against its tool's schema; and the text left."""
        if self.choice == "required":
            found = [{"name": call["name"], "arguments": call["parameters"]} for call in parsed]
            text = ""
        elif self.choice not in ("auto", "none"):
            found, text = [{"name": self.choice, "arguments": parsed}], ""
        calls = [self._checked(call) for call in found or ()]
        return calls, text

    def _checked(self, call: dict) -> ToolCall:
        name = call["name"]
        if name not in self.validators:
            raise InputError(f"The model called {name!r}, which is not one of the tools given ({self._names()}).")
        try:
            schema_guard.validate(self.validators[name], call["arguments"])
        except jsonschema.ValidationError as exc:
            raise InputError(
                f"The model's call of {name!r} does not satisfy its parameters schema ({exc.message}): "
                f"arguments {call['arguments']!r}. Ask again, or use tool_choice {name!r} to constrain the output."
            ) from exc
        return ToolCall(id=call.get("id") or f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=call["arguments"])

    def _names(self) -> str:
        return ", ".join(t.function.name for t in self.tools)


async def tool_use(tools: list[dict] | None, choice: str | dict | None, parser: str | None) -> ToolUse | None:
    """The request's tools checked (names, schemas: no remote references, size caps) with its tool_choice;
    None without tools. Says what to fix: an unknown tool, `auto` without a parser, a duplicate name."""
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InputError(f"tool_choice {choice!r} needs `tools`: give the functions the model may call.")
        return None
    if len(tools) > MAX_TOOLS:
        raise InputError(f"{len(tools)} tools given; at most {MAX_TOOLS} per request.")
    specs = [_spec(i, tool) for i, tool in enumerate(tools)]
    names = [s.function.name for s in specs]
    if len(set(names)) < len(names):
        raise InputError(f"Tool names must be unique; repeated: {sorted({n for n in names if names.count(n) > 1})}.")
    validators = {}
    for spec in specs:
        schema = spec.function.parameters or {"type": "object"}
        await schema_guard.check_client_schema_async(schema)
        validators[spec.function.name] = await schema_guard.validator_for_async(schema)
    mode = _choice(choice, names)
    if mode == "auto" and parser is None:
        raise InputError(
            "tool_choice `auto` needs the server started with --tool-call-parser (the one for the model's call "
            "format: hermes for Qwen and Hermes models, llama3_json, mistral, ...). Without it, use tool_choice "
            "`required` or a tool's name, which work on every model."
        )
    return ToolUse(specs, mode, parser, validators)


def _spec(index: int, tool: dict) -> ToolSpec:
    try:
        spec = ToolSpec.model_validate(tool)
    except ValueError as exc:
        raise InputError(
            f"tools[{index}] is not a tool: give {{'type': 'function', 'function': {{'name': ..., 'description': ..., "
            f"'parameters': {{JSON Schema}}}}}} ({str(exc).splitlines()[0]})."
        ) from exc
    if not NAME.match(spec.function.name):
        raise InputError(f"tools[{index}] name {spec.function.name!r}: use letters, digits, _ . - (at most 64).")
    return spec


def _choice(choice: str | dict | None, names: list[str]) -> str:
    if choice is None:
        return "auto"
    if isinstance(choice, dict):  # OpenAI's {"type": "function", "function": {"name": ...}}
        choice = (choice.get("function") or {}).get("name") or choice.get("name")
        if not isinstance(choice, str):
            raise InputError("tool_choice as an object is {'type': 'function', 'function': {'name': TOOL}}.")
    if choice in MODES or choice in names:
        return choice
    close = difflib.get_close_matches(choice, [*MODES, *names], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise InputError(
        f"tool_choice {choice!r} is not auto, none, required or one of the tools ({', '.join(names)}).{hint}"
    )
