"""The arguments that shape an answer — tools, tool_choice, pick, include_reasoning — shared by `generate` and
`batch` (where they apply to every item), and the checked plan they make with the server's parsers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from mcp_llm.core import answers
from mcp_llm.core.services import Services
from mcp_llm.schemas import SamplingOptions

ToolsArg = Annotated[
    list[dict[str, Any]] | None,
    Field(
        description="Functions the model may call, OpenAI's shape: "
        "[{'type': 'function', 'function': {'name', 'description', 'parameters': JSON Schema}}]. Needs messages."
    ),
]
ToolChoiceArg = Annotated[
    str | dict[str, Any] | None,
    Field(
        description="auto (default with tools: the model decides; needs the server's --tool-call-parser), none, "
        "required (some call, constrained: any model), or a tool's name (that call, constrained)."
    ),
]
IncludeReasoningArg = Annotated[
    bool, Field(description="Return the model's reasoning in `reasoning` (with the server's --reasoning-parser).")
]
PickArg = Annotated[
    answers.Pick,
    Field(description="With n > 1, which sample is `text`: the first, or the most confident (mean logprob)."),
]


async def answering_of(
    svc: Services,
    sampling: SamplingOptions,
    tools: list[dict] | None,
    tool_choice: str | dict | None,
    pick: answers.Pick,
    include_reasoning: bool,
) -> answers.Answering:
    """The request's answering plan, checked before any token is spent, with this server's parsers."""
    return await answers.answering(
        sampling,
        tools,
        tool_choice,
        pick,
        include_reasoning,
        tool_call_parser=svc.settings.tool_call_parser,
        reasoning_parser=svc.settings.reasoning_parser,
    )
