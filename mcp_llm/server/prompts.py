"""MCP prompts kept as files: `prompts/*.md`, YAML front matter (name, title, description, arguments,
resources) over a Jinja template. Loaded and validated at start: a broken file stops the start, naming it.

An argument with `choices` is checked when the prompt is rendered and completed by the MCP completion API.
Resources listed in the front matter are read live and attached to the messages as embedded resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, Prompt, PromptArgument, UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, Completion, EmbeddedResource, PromptReference, TextResourceContents
from pydantic import BaseModel, Field, ValidationError

# The bundled prompt files: package data (pyproject), found the same way in a checkout and in an installed wheel.
PROMPTS_DIR = Path(str(resources.files("mcp_llm.server") / "assets" / "prompts"))
_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the file."""


class CheckedPrompt(Prompt):
    """A Prompt whose missing required arguments are an invalid-params error naming them (the SDK's
    own check raises a ValueError that reaches the client as an internal error)."""

    async def render(self, arguments: dict[str, Any] | None, context: Context) -> Any:
        missing = [a.name for a in self.arguments or [] if a.required and a.name not in (arguments or {})]
        if missing:
            raise MCPError(INVALID_PARAMS, f"Prompt {self.name} needs the argument(s): {', '.join(missing)}.")
        return await super().render(arguments, context)


class ArgumentSpec(BaseModel, extra="forbid"):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    description: str
    required: bool = False
    choices: list[str] | None = None


class PromptSpec(BaseModel, extra="forbid"):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    title: str
    description: str
    arguments: list[ArgumentSpec] = []
    resources: list[str] = []


@dataclass
class FilePrompt:
    """One prompt file: its validated metadata and compiled template."""

    spec: PromptSpec
    template: jinja2.Template
    path: Path

    def check(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """All declared arguments (absent optional ones as None), each choice valid; MCP errors otherwise."""
        for arg in self.spec.arguments:
            value = arguments.get(arg.name)
            if arg.choices and value is not None and value not in arg.choices:
                raise MCPError(INVALID_PARAMS, f"`{arg.name}` must be one of {', '.join(arg.choices)}; got {value!r}.")
        unknown = set(arguments) - {a.name for a in self.spec.arguments}
        if unknown:
            raise MCPError(INVALID_PARAMS, f"Unknown arguments {sorted(unknown)} for prompt {self.spec.name}.")
        return {a.name: arguments.get(a.name) for a in self.spec.arguments}

    async def render(self, ctx: Context, **arguments: Any) -> list[Message]:
        messages: list[Message] = [UserMessage(self.template.render(**self.check(arguments)).strip())]
        for uri in self.spec.resources:
            for content in await ctx.read_resource(uri):
                text = content.content if isinstance(content.content, str) else content.content.decode()
                resource = TextResourceContents(uri=uri, mime_type=content.mime_type, text=text)
                messages.append(UserMessage(EmbeddedResource(type="resource", resource=resource)))
        return messages

    def as_prompt(self) -> Prompt:
        args = [
            PromptArgument(name=a.name, description=self._describe(a), required=a.required) for a in self.spec.arguments
        ]
        return CheckedPrompt(
            name=self.spec.name,
            title=self.spec.title,
            description=self.spec.description,
            arguments=args,
            fn=self.render,
            context_kwarg="ctx",
        )

    @staticmethod
    def _describe(arg: ArgumentSpec) -> str:
        return f"{arg.description} One of: {', '.join(arg.choices)}." if arg.choices else arg.description


def load_prompt(path: Path) -> FilePrompt:
    """Parse and validate one prompt file; PromptFileError names the file and the problem."""
    try:
        raw = path.read_text(encoding="utf-8")
        _, front, body = raw.split("---\n", 2)
        spec = PromptSpec.model_validate(yaml.safe_load(front))
        template = _JINJA.from_string(body)
    except (ValueError, OSError, yaml.YAMLError, ValidationError, jinja2.TemplateError) as exc:
        raise PromptFileError(f"prompt file {path}: {exc}") from exc
    if spec.name != path.stem:
        raise PromptFileError(f"prompt file {path}: name {spec.name!r} must match the file name {path.stem!r}")
    return FilePrompt(spec, template, path)


def load_prompts(directory: Path = PROMPTS_DIR) -> dict[str, FilePrompt]:
    return {p.spec.name: p for p in (load_prompt(path) for path in sorted(directory.glob("*.md")))}


def register(mcp: MCPServer, prompts: dict[str, FilePrompt]) -> None:
    """Add the prompts and a completion handler for their enumerated arguments."""
    for prompt in prompts.values():
        mcp.add_prompt(prompt.as_prompt())

    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion | None:
        if not isinstance(ref, PromptReference) or ref.name not in prompts:
            return None
        spec = next((a for a in prompts[ref.name].spec.arguments if a.name == argument.name), None)
        if spec is None or not spec.choices:
            return None
        values = [c for c in spec.choices if c.startswith(argument.value or "")]
        return Completion(values=values, total=len(values), has_more=False)
