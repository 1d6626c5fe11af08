"""Tool `usage`: every client's usage over a period (admins); `usage://me` is each client's own."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_llm.core import accounting
from mcp_llm.core.schemas import UsageReport
from mcp_llm.server.tools.common import services_of, tool_errors


@tool_errors
async def usage(
    ctx: Context,
    since_hours: Annotated[float, Field(gt=0, le=24 * 366, description="How far back, in hours.")] = 24,
    bucket: Annotated[Literal["hour", "day"], Field(description="Sum per hour or per day (UTC).")] = "hour",
) -> UsageReport:
    """Every client's requests, errors, prompt and output tokens over the period, per client and hour or day,
    with totals per client (admins only; each client reads its own at usage://me)."""
    return accounting.report(services_of(ctx), since_hours, bucket)


TOOLS = [usage]
