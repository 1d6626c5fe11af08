"""Tool-argument errors in words a person (or a model) can act on, instead of pydantic's raw report.

`describe` turns a pydantic ValidationError into one line per wrong argument: a misspelt name gets the
closest real one ("unknown argument `max_tokns`; did you mean `max_tokens`?"), a value out of range gets
the range ("`temperature` must be between 0 and 2; got 5"), a wrong type the expected one. It never
repeats pydantic's link to its documentation site. `readable_argument_errors` applies it to the SDK's own
argument validation (MCPServer.call_tool).
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import ValidationError

MAX_LINES = 6
TYPE_WORDS = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "decimal": "a number",
    "string": "a string",
    "str": "a string",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "dict": "an object",
    "model": "an object",
    "dataclass": "an object",
    "bytes": "a string",
    "none": "null",
}
BOUNDS = {
    "greater_than_equal": ("ge", "greater than or equal to"),
    "greater_than": ("gt", "greater than"),
    "less_than_equal": ("le", "less than or equal to"),
    "less_than": ("lt", "less than"),
}
SCALAR_TAGS = {"str", "int", "float", "bool", "none", "bytes", "list", "dict"}


def describe(exc: ValidationError, fields: Mapping[str, Mapping[str, Any]] | Iterable[str] = ()) -> str:
    """One readable line per wrong argument of `exc`, joined by '; '. `fields` are the tool's argument names,
    or its inputSchema `properties` (name → JSON schema), whose bounds then name the whole allowed range."""
    schemas = dict(fields) if isinstance(fields, Mapping) else {name: {} for name in fields}
    groups: dict[str, list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        groups.setdefault(_path(error["loc"]), []).append(error)
    lines = [_describe_group(path, errors, schemas) for path, errors in groups.items()]
    lines = list(dict.fromkeys(lines))  # unions report one field several times
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"and {len(lines) - MAX_LINES} more"]
    return "; ".join(lines) or "the arguments are not valid"


def _describe_group(path: str, errors: list[dict[str, Any]], schemas: dict[str, Mapping[str, Any]]) -> str:
    first = errors[0]
    if first["type"] == "extra_forbidden":
        return _unknown(path, schemas)
    if first["type"] == "missing":
        return f"missing required argument `{path}`" if "." not in path and "[" not in path else f"`{path}` is required"
    schema = schemas.get(path, {})
    rules = list(dict.fromkeys(_rule(e, schema) for e in errors))
    if rules[0].startswith("must be ") and all(r.startswith("must be ") for r in rules):
        rule = "must be " + " or ".join(r.removeprefix("must be ") for r in rules)
    else:
        rule = "; ".join(rules)
    subject = f"`{path}` " if path else ""
    got = _got(first.get("input")) if first["type"] not in ("value_error", "assertion_error") else ""
    return f"{subject}{rule}{got}"


def _unknown(path: str, schemas: Mapping[str, Any]) -> str:
    if "." in path or "[" in path:  # inside an object argument: its own fields are not known here
        return f"unknown field `{path}`"
    close = difflib.get_close_matches(path, list(schemas), n=1, cutoff=0.6)
    if close:
        return f"unknown argument `{path}`; did you mean `{close[0]}`?"
    known = ", ".join(f"`{name}`" for name in schemas)
    return f"unknown argument `{path}`" + (f"; the arguments are {known}" if known else "")


def _rule(error: dict[str, Any], schema: Mapping[str, Any]) -> str:
    """What the value must be, from one pydantic error (and the argument's schema for its full range)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in BOUNDS:
        for option in schema.get("anyOf", ()):  # an optional number: its bounds sit in one branch
            schema = {**option, **schema} if "minimum" in option or "maximum" in option else schema
        if "minimum" in schema and "maximum" in schema:  # both inclusive: the whole range in words
            return f"must be between {_num(schema['minimum'])} and {_num(schema['maximum'])}"
        key, words = BOUNDS[kind]
        return f"must be {words} {_num(ctx.get(key))}"
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        short = "short" in kind
        limit = ctx.get("min_length") if short else ctx.get("max_length")
        side, plural = ("at least" if short else "at most"), ("" if limit == 1 else "s")
        if kind.startswith("string"):
            return f"must be {side} {limit} character{plural} long"
        return f"must have {side} {limit} item{plural}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')}"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')!r}"
    if kind in ("multiple_of",):
        return f"must be a multiple of {_num(ctx.get('multiple_of'))}"
    stem = kind.removesuffix("_type").removesuffix("_parsing").removesuffix("_from_float").split("_")[0]
    if stem in TYPE_WORDS:
        return f"must be {TYPE_WORDS[stem]}"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _path(loc: tuple[Any, ...]) -> str:
    """`messages[0].role` from pydantic's ('messages', 0, 'role'), without union-member tags such as
    'dict[str,any]' or 'function-after[...]'."""
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i and (part in SCALAR_TAGS or any(c in part for c in "[]-,( ")):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def _num(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _got(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return f"; got {text[:77] + '...' if len(text) > 80 else text}"


def readable_argument_errors(call_tool: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """MCPServer.call_tool whose argument-validation failures (a ToolError caused by a ValidationError)
    carry `describe`'s message with the tool's inputSchema, instead of pydantic's report."""

    @functools.wraps(call_tool)
    async def wrapper(self: Any, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await call_tool(self, name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            tool = self._tool_manager.get_tool(name)
            properties = (tool.parameters or {}).get("properties", {}) if tool is not None else {}
            raise ToolError(f"Error executing tool {name}: {describe(cause, properties)}") from cause

    return wrapper
