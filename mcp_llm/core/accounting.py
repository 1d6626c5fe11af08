"""Usage accounting: what each client used (requests, errors, prompt and output tokens), by hour or day, from the
`usage` table the request log feeds, with each client's quota state. `usage://me` shows the caller's own;
`usage://clients` and the `usage` tool show every client's (admins)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from mcp_llm.core.access import Principal
from mcp_llm.core.schemas import UsageBucket, UsageReport
from mcp_llm.core.store import USAGE_COLUMNS

if TYPE_CHECKING:
    from mcp_llm.core.services import Services

BUCKET_S = {"hour": 3600, "day": 86_400}


def report(
    svc: Services, since_hours: float, bucket: Literal["hour", "day"], only: Principal | None = None
) -> UsageReport:
    """Usage from `since_hours` ago (rounded down to the bucket), every client's or `only` one's."""
    now = time.time()
    since = now - since_hours * 3600
    since -= since % BUCKET_S[bucket]
    rows = svc.store.usage_rows(since, only.client if only else None, BUCKET_S[bucket])
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        total = totals.setdefault(row["client"], dict.fromkeys(USAGE_COLUMNS, 0))
        for column in USAGE_COLUMNS:
            total[column] += row[column]
    quotas = {only.client: svc.quotas.state(only, now)} if only else {}
    return UsageReport(
        since=since, bucket=bucket, totals=totals, buckets=[UsageBucket(**r) for r in rows], quotas=quotas
    )
