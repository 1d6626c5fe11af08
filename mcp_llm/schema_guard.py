"""A client's `json_schema` made safe to compile, validate with and forward.

A JSON Schema can point elsewhere: `$ref: "http://..."` (or `file:///...`), an `$id` that rebases
relative references, an unknown `$schema`. jsonschema 4.x fetches remote references with `urlopen`
unless it is given a registry without retrieval, so a client could make the server open connections
(and block its event loop doing it). Here:

- `check_client_schema` refuses, with a message that says what to change, any reference that is not a
  `#...` pointer into the schema itself, any `$id`, any unknown `$schema`, local pointers that lead
  nowhere, and schemas over `MAX_SCHEMA_CHARS` serialized or nested deeper than `MAX_SCHEMA_DEPTH`;
  then it checks the schema against its metaschema.
- `validator_for` builds the validator on a `referencing` registry whose retrieval always refuses:
  even a reference the check missed is never fetched.
- `check_client_schema_async` / `validator_for_async` run those off the event loop.

Every place a client's schema goes (generate, batch and its job runner, the flows, the remote backend's
`structured_outputs`) goes through here first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import anyio.to_thread
import jsonschema
import jsonschema.validators
import referencing
import referencing.exceptions

from mcp_llm.errors import InputError

MAX_SCHEMA_CHARS = 64 * 1024  # serialized (compact JSON), in characters
MAX_SCHEMA_DEPTH = 32  # nested objects/arrays, the schema itself being level 1

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
KNOWN_VALIDATORS = (
    jsonschema.Draft202012Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft4Validator,
    jsonschema.Draft3Validator,
)
# draft 3/4 name their base-URI keyword `id` (a common property name elsewhere: only checked for those dialects)
OLD_ID_DIALECTS = {jsonschema.Draft4Validator, jsonschema.Draft3Validator}


def _dialect_uri(cls: type) -> str:
    meta = cls.META_SCHEMA
    return str(meta.get("$id", meta.get("id", ""))).rstrip("#")


DIALECTS = {_dialect_uri(cls): cls for cls in KNOWN_VALIDATORS}


def _never_retrieve(uri: str) -> referencing.Resource:
    """The registry's retrieval: refuses instead of fetching anything."""
    raise referencing.exceptions.NoSuchResource(ref=uri)


# No retrieval: a reference not inside the schema (or one of jsonschema's bundled metaschemas) is unresolvable.
NO_RETRIEVAL = referencing.Registry(retrieve=_never_retrieve)  # type: ignore[call-arg]


def where(path: tuple[str | int, ...]) -> str:
    """A location as `properties.a.not` (the top level when empty)."""
    return ".".join(str(p) for p in path) if path else "the top level"


def _walk(schema: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every (path, node) of a JSON value, depth first, without recursion; InputError past MAX_SCHEMA_DEPTH."""
    stack: list[tuple[tuple[str | int, ...], Any, int]] = [((), schema, 1)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_SCHEMA_DEPTH:
            raise InputError(
                f"`json_schema` is nested more than {MAX_SCHEMA_DEPTH} levels deep (at {where(path)}); the limit is "
                f"{MAX_SCHEMA_DEPTH}: flatten it, e.g. move repeated parts into `$defs` and reference them."
            )
        yield path, node
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend(((*path, key), child, depth + 1) for key, child in reversed(list(children)))


def _resolve_pointer(schema: Any, fragment: str) -> bool:
    """Whether the JSON pointer `fragment` (without `#`) leads to something in `schema`."""
    node = schema
    for raw in fragment.split("/")[1:]:
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def _check_reference(schema: Any, keyword: str, ref: str, path: tuple[str | int, ...]) -> None:
    if not ref.startswith("#"):
        raise InputError(
            f"`json_schema` may only reference its own definitions (`#/$defs/...`): {keyword} {ref!r} at "
            f"{where(path)} would need a fetch, which this server never does. Inline that schema under `$defs` "
            f"and point to it as `#/$defs/NAME`."
        )
    fragment = ref[1:]
    if fragment.startswith("/") and not _resolve_pointer(schema, fragment):
        raise InputError(
            f"`json_schema` has {keyword} {ref!r} at {where(path)}, which points to nothing in the schema: "
            "define it (e.g. under `$defs`) or fix the pointer."
        )


def _check_structure(schema: Any) -> None:
    """Limits, references, `$id` and `$schema`; pure and quick (no metaschema)."""
    if not isinstance(schema, dict):
        raise InputError(f"`json_schema` must be a JSON object (a schema), not {type(schema).__name__}.")
    nodes = list(_walk(schema))  # first: it bounds the depth before anything recursive (json.dumps) runs
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False))
    if size > MAX_SCHEMA_CHARS:
        raise InputError(
            f"`json_schema` is {size:,} characters as JSON; the limit is {MAX_SCHEMA_CHARS:,}: shorten it "
            "(drop descriptions and examples, reuse parts through `$defs`)."
        )
    dialect = DIALECTS.get(str(schema.get("$schema", "")).rstrip("#"))
    id_keywords = ("$id", "id") if dialect in OLD_ID_DIALECTS else ("$id",)
    for path, node in nodes:
        if not isinstance(node, dict):
            continue
        for keyword in REFERENCE_KEYWORDS:
            if isinstance(node.get(keyword), str):
                _check_reference(schema, keyword, node[keyword], path)
        for keyword in id_keywords:
            if isinstance(node.get(keyword), str):
                raise InputError(
                    f"`json_schema` may not set {keyword} ({node[keyword]!r} at {where(path)}): a base URI could send "
                    f"its references outside the schema. Remove {keyword} and reference definitions as `#/$defs/NAME`."
                )
        meta = node.get("$schema")
        if isinstance(meta, str) and meta.rstrip("#") not in DIALECTS:
            known = ", ".join(sorted(DIALECTS))
            raise InputError(
                f"`json_schema` names an unknown `$schema` ({meta!r} at {where(path)}): leave `$schema` out "
                f"(JSON Schema 2020-12 is assumed) or use one of: {known}."
            )


def _validator_class(schema: dict) -> type:
    return DIALECTS.get(str(schema.get("$schema", "")).rstrip("#"), jsonschema.Draft202012Validator)


def check_client_schema(schema: Any) -> None:
    """InputError, saying what to change, unless `schema` is a valid JSON Schema that references only itself
    and fits the limits. Pure; can take a moment on a large schema (use `check_client_schema_async` in a server)."""
    _check_structure(schema)
    try:
        _validator_class(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputError(
            f"`json_schema` is not a valid JSON Schema: {exc.message} (at {where(tuple(exc.path))})."
        ) from exc


def check_forwardable(schema: Any) -> None:
    """The quick part of the check (limits, references, `$id`, `$schema`), for a schema about to leave this
    process (e.g. to a remote vLLM's `structured_outputs`): nothing pointing elsewhere is ever forwarded."""
    _check_structure(schema)


def validator_for(schema: Any) -> jsonschema.protocols.Validator:
    """A validator for a client's schema, after `check_client_schema`, on a registry that never retrieves."""
    check_client_schema(schema)
    return _validator_class(schema)(schema, registry=NO_RETRIEVAL)


def validate(validator: jsonschema.protocols.Validator, value: Any) -> None:
    """jsonschema.ValidationError if `value` does not satisfy the schema; InputError if the schema cannot be
    applied (an unresolvable reference: nothing is ever fetched)."""
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except referencing.exceptions.Unresolvable as exc:
        raise InputError(
            f"`json_schema` has a reference that cannot be resolved inside the schema ({exc}); nothing is fetched: "
            "inline it under `$defs` and point to it as `#/$defs/NAME`."
        ) from exc
    if error is not None:
        raise error


async def check_client_schema_async(schema: Any) -> None:
    """`check_client_schema` in a worker thread: the event loop keeps serving meanwhile."""
    await anyio.to_thread.run_sync(check_client_schema, schema)


async def validator_for_async(schema: Any) -> jsonschema.protocols.Validator:
    """`validator_for` in a worker thread."""
    return await anyio.to_thread.run_sync(validator_for, schema)
