"""The live serving dashboard: an MCP App (`io.modelcontextprotocol/ui`) and the same page at `GET /dashboard`.

`dashboard` is bound to the `ui://mcp-llm/dashboard.html` page; hosts that negotiated Apps render it and get
the numbers as structured content, every other client gets a text summary of the same numbers. The page
refreshes by calling `dashboard_data` (visible to the app only) and `cancel_job`, through the host's app
bridge or, at `GET /dashboard`, through `/mcp` with the caller's bearer token.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from typing import Any
from urllib.parse import unquote

from mcp.server.apps import Apps, client_supports_apps
from mcp.server.auth.provider import TokenVerifier
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mcp_llm.background import repeating
from mcp_llm.core import accounting
from mcp_llm.core.access import Principal
from mcp_llm.core.jobs import job_status_of
from mcp_llm.core.registry import adapters, models
from mcp_llm.core.registry.models import info
from mcp_llm.core.services import Runtime, Services
from mcp_llm.engine.base import EngineState
from mcp_llm.server.schemas import SAMPLE_S, DashboardData, Entry, HistoryPoint
from mcp_llm.server.tools.common import principal_of, services_of, tool_errors

log = logging.getLogger(__name__)

PAGE = resources.files("mcp_llm.server") / "assets" / "dashboard.html"  # package data
URI = "ui://mcp-llm/dashboard.html"
HISTORY_POINTS = 150  # one every SAMPLE_S: the last 5 minutes
COOKIE = "mcp_llm_token"
CONFIG_TAG = '<script id="mcp-llm-config" type="application/json">{}</script>'
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


class History:
    """Recent points of one engine's metrics; sampled at most every SAMPLE_S by whoever asks first."""

    def __init__(self) -> None:
        self.points: deque[HistoryPoint] = deque(maxlen=HISTORY_POINTS)

    def sample(self, svc: Services, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        """The metrics://engine document now, recorded as a point unless the last one is recent."""
        metrics = metrics or svc.metrics.snapshot(svc.engine.stats())
        now = time.time()
        if not self.points or now - self.points[-1].t >= SAMPLE_S * 0.9:
            engine = metrics["engine"]
            latency = {k: {q: v[q] for q in ("p50", "p95", "p99")} for k, v in metrics["latency_ms"].items()}
            self.points.append(
                HistoryPoint(
                    t=now,
                    requests_per_s=metrics["requests_per_s"],
                    output_tokens_per_s=metrics["output_tokens_per_s"],
                    latency_ms={k: latency[k] for k in ("ttft_ms", "tpot_ms", "e2e_ms")},
                    running=engine["running_requests"],
                    waiting=engine["waiting_requests"],
                    kv_cache_usage=engine["kv_cache_usage"],
                )
            )
        return metrics


_histories: weakref.WeakKeyDictionary[object, History] = weakref.WeakKeyDictionary()


def history(svc: Services) -> History:
    """The history of these services' engine (one per engine, however many apps share it)."""
    return _histories.setdefault(svc.engine, History())


def with_history(lifespan: Callable[[MCPServer], AbstractAsyncContextManager[Runtime]], runtime: Runtime):
    """`lifespan`, plus a history point every SAMPLE_S while the server runs (charts have a past)."""

    async def step() -> None:
        if runtime.services is not None and runtime.state is EngineState.READY:
            try:
                history(runtime.services).sample(runtime.services)
            except Exception:  # a gap in the charts, never a stopped sampler (e.g. mid-swap)
                log.debug("dashboard: no history point this time", exc_info=True)

    @asynccontextmanager
    async def wrapped(app: MCPServer) -> AsyncIterator[Runtime]:
        async with lifespan(app) as context, repeating(step, SAMPLE_S):
            yield context

    return wrapped


def collect(svc: Services, caller: Principal) -> DashboardData:
    """Read everything the page shows the caller: metrics, history, its jobs (an admin: everyone's, each with its
    client), models, the adapters it may use."""
    metrics = history(svc).sample(svc)
    config = svc.engine.config()
    own = None if caller.admin else caller.client
    active = svc.store.jobs(["queued", "running"], limit=20, client=own)
    recent = [r for r in svc.store.jobs(None, limit=10, client=own) if r["status"] not in ("queued", "running")]
    jobs = [job_status_of(svc, r["id"]) for r in [*active, *recent][:10]]
    reg = models.registry(svc)
    models.register_serving(svc, reg)
    current = svc.engine.model_name
    model_list = [_model_entry(info(r, current)) for r in reg.all()]
    adapter_list = [
        Entry(name=a.name, detail=f"rank {a.rank}, {a.source}", serving=a.name in config.adapters)
        for a in adapters.registry(svc).all(caller)
    ]
    return DashboardData(
        at=time.time(),
        model=current,
        backend=svc.engine.backend,
        state=config.state,
        metrics=metrics,
        max_num_seqs=config.max_num_seqs,
        history=list(history(svc).points),
        jobs=jobs,
        models=model_list,
        adapters=adapter_list,
        lora_enabled=config.lora,
        usage=_usage_entries(svc) if caller.admin else None,
    )


def _usage_entries(svc: Services) -> list[Entry]:
    """Each client's last 24 hours, as the admin's usage panel lists it."""
    totals = accounting.report(svc, 24, "day").totals
    return [
        Entry(
            name=client,
            detail=f"{t['requests']} requests ({t['errors']} errors), {t['prompt_tokens']} tokens in, "
            f"{t['output_tokens']} out",
        )
        for client, t in sorted(totals.items(), key=lambda item: -item[1]["output_tokens"])
    ]


def _model_entry(model: Any) -> Entry:
    parts = [model.scheme or "base"]
    if model.disk_bytes:
        parts.append(f"{model.disk_bytes / 1e6:.0f} MB")
    return Entry(name=model.name, detail=", ".join(parts), serving=model.serving)


def ms(value: float | None) -> str:
    """Milliseconds as the page shows them."""
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def summary(data: DashboardData) -> str:
    """The dashboard as text, for clients that cannot show the page (and for the model in any host)."""
    m, engine = data.metrics, data.metrics["engine"]
    lat = m["latency_ms"]
    spec = engine.get("speculative_decoding")
    lines = [
        f"mcp-llm dashboard: {data.model} ({data.backend} backend), engine {data.state}",
        f"Throughput, last {m['window_s']:.0f} s: {m['requests_per_s']:.2f} req/s, "
        f"{m['output_tokens_per_s']:.1f} output tok/s ({m['requests_in_window']} requests, "
        f"{m['errors_in_window']} errors)",
        "Latency p50 / p95 / p99: "
        + "; ".join(
            f"{label} {' / '.join(ms(lat[key][q]) for q in ('p50', 'p95', 'p99'))}"
            for label, key in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("end-to-end", "e2e_ms"))
        ),
        f"Engine: {engine['running_requests']} running, {engine['waiting_requests']} waiting; KV cache "
        f"{pct(engine['kv_cache_usage'])} used; prefix-cache hit rate {pct(engine['prefix_cache_hit_rate'])}; "
        + (
            f"speculative decoding {pct(spec['acceptance_rate'])} accepted, {spec['tokens_per_step']:.2f} tok/step"
            if spec
            else "speculative decoding off"
        ),
        f"Totals: {m['totals']['requests']:.0f} requests, {m['totals']['generation_tokens']:.0f} tokens generated",
    ]
    jobs = [
        f"{j.job_id} {j.status} {j.completed + j.failed}/{j.total}"
        + (f" ({j.progress})" if j.progress else "")
        + (f" by {j.client}" if j.client else "")
        for j in data.jobs
    ]
    lines.append("Jobs: " + ("; ".join(jobs) if jobs else "none"))
    lines.append("Models: " + ", ".join(f"{e.name}{' (serving)' if e.serving else ''}" for e in data.models))
    adapters = ", ".join(f"{e.name} ({e.detail})" for e in data.adapters) or "none"
    lines.append(f"Adapters: {adapters}" + ("" if data.lora_enabled else " (LoRA off)"))
    if data.usage is not None:
        lines.append("Usage, last 24 h: " + ("; ".join(f"{e.name}: {e.detail}" for e in data.usage) or "none"))
    lines.append("The live page: an MCP Apps host shows it with this tool; over HTTP it is GET /dashboard.")
    return "\n".join(lines)


def extension() -> Apps:
    """The Apps extension: the `dashboard` tool, the app-only `dashboard_data` tool, and the page."""
    apps = Apps()
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @apps.tool(resource_uri=URI, title="Serving dashboard", annotations=read_only)
    @tool_errors
    async def dashboard(ctx: Context) -> CallToolResult:
        """Show the live serving dashboard: throughput and latency over the last minutes, queue, KV cache,
        jobs (with cancel), models and adapters. Clients without MCP Apps get the same numbers as text."""
        data = collect(services_of(ctx), principal_of(ctx))
        text = TextContent(type="text", text=summary(data))
        if client_supports_apps(ctx):
            return CallToolResult(content=[text], structured_content=data.model_dump(mode="json"))
        return CallToolResult(content=[text])

    @apps.tool(resource_uri=URI, visibility=["app"], title="Dashboard data", annotations=read_only)
    @tool_errors
    async def dashboard_data(ctx: Context) -> DashboardData:
        """What the dashboard page shows, read now (the page calls this to refresh)."""
        return collect(services_of(ctx), principal_of(ctx))

    apps.add_html_resource(
        URI,
        PAGE.read_text(),
        name="dashboard",
        title="mcp-llm serving dashboard",
        description="Live throughput, latency, queue, KV cache, jobs, models and adapters.",
        prefers_border=False,
    )
    return apps


def register_route(mcp: MCPServer, verifier: TokenVerifier | None) -> None:
    """`GET /dashboard`: the page, behind the same bearer tokens as /mcp (a header, or the cookie its sign-in
    form sets); without a valid one, 401 and that form."""

    @mcp.custom_route("/dashboard", methods=["GET"])
    async def page(request: Request) -> HTMLResponse:
        token = await _token(request, verifier)
        if verifier is not None and token is None:
            return HTMLResponse(SIGN_IN, status_code=401, headers={"WWW-Authenticate": "Bearer", **_headers()})
        config = json.dumps({"endpoint": "/mcp", "token": token}).replace("</", "<\\/")
        html = PAGE.read_text().replace(CONFIG_TAG, CONFIG_TAG.replace("{}", config))
        return HTMLResponse(html, headers=_headers())


async def _token(request: Request, verifier: TokenVerifier | None) -> str | None:
    """The bearer token the request authenticated with (header or cookie); None without auth or a valid one."""
    if verifier is None:
        return None
    header = request.headers.get("authorization", "")
    candidates = [header[7:].strip()] if header.lower().startswith("bearer ") else []
    candidates += [unquote(request.cookies[COOKIE])] if COOKIE in request.cookies else []
    for token in candidates:
        if token and await verifier.verify_token(token) is not None:
            return token
    return None


def _headers() -> dict[str, str]:
    return {"Cache-Control": "no-store", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


SIGN_IN = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mcp-llm dashboard: sign in</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input,button{{font:inherit;padding:.4rem}}input{{width:100%;box-sizing:border-box}}</style></head>
<body><h1>mcp-llm dashboard</h1><p>This server needs a bearer token (the one your MCP client uses for /mcp).</p>
<form id="f"><label>Token <input id="t" type="password" autocomplete="current-password" required></label>
<p><button>Open the dashboard</button></p></form>
<script>document.getElementById("f").addEventListener("submit",e=>{{e.preventDefault();
document.cookie="{COOKIE}="+encodeURIComponent(document.getElementById("t").value)+
"; path=/dashboard; SameSite=Strict"+(location.protocol==="https:"?"; Secure":"");location.reload();}});
</script></body></html>"""
