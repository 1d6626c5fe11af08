"""The serving dashboard in a real headless Chromium (Debian's, through its chromedriver), against the real server
over HTTP on the session's engine: inside a test MCP Apps host (tests/dashboard_host.html plays the host side of
the app bridge and forwards the page's calls to /mcp), and standalone at GET /dashboard. Clients without Apps get
the text summary. Each view's screenshot is saved to docs/ (the README shows docs/dashboard.png)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mcp_llm.core.access import Principal
from mcp_llm.core.metrics import SERIES
from mcp_llm.core.services import Services
from mcp_llm.server import auth, dashboard
from mcp_llm.server.app import create_app
from mcp_llm.settings import Settings
from tests.conftest import REPO
from tests.support.net import free_port

pytestmark = pytest.mark.anyio

TOKEN = "dashboard-test-token"
DOCS = REPO / "docs"
HOST_PAGE = REPO / "tests" / "dashboard_host.html"
BASELINE_Y = 140 - 18  # a chart's zero line (svg height minus bottom margin)

# What the page shows ([data-value] and text), read in the page.
READ_PAGE = """
const out = {refreshes: +document.body.dataset.refreshes, nums: {}};
out.error = document.getElementById('error').textContent;
for (const el of document.querySelectorAll('[data-value]')) out.nums[el.id] = [el.dataset.value, el.textContent];
out.paths = {};
for (const p of document.querySelectorAll('.chart path')) {
  out.paths[p.closest('.chart').id + ':' + p.dataset.series] =
    (p.getAttribute('d') || '').split(/[ML]/).filter(Boolean).map((xy) => xy.split(',').map(Number));
}
out.boxes = [...document.querySelectorAll('header, section, .card')].map((e) => {
  const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; });
return out;
"""


@pytest.fixture(scope="module")
async def site(settings: Settings, services: Services) -> AsyncIterator[str]:
    """The real server over Streamable HTTP on the session's engine, bearer tokens on, plus the test host page."""
    app = create_app(settings, shared=services, tokens={TOKEN: Principal("dashboard-test", "admin")})  # sees all jobs

    @app.custom_route("/test-host", methods=["GET"])
    async def host(_: Request) -> HTMLResponse:
        return HTMLResponse(HOST_PAGE.read_text())

    port = free_port()
    http_app = app.streamable_http_app(host="127.0.0.1", transport_security=auth.transport_security(settings))
    config = uvicorn.Config(http_app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    with anyio.fail_after(30):
        while not server.started:
            await anyio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


class Browser:
    """Headless Chromium; each call runs in a worker thread, since the server it talks to shares this loop."""

    def __init__(self) -> None:
        chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
        if not chromium or not driver:
            pytest.fail(
                "chromium and chromedriver are missing: scripts/setup_browser.sh installs them (make test runs it)"
            )
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(options=options, service=Service(driver))

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(lambda: self.driver.execute_script(script, *args))

    async def open(self, url: str, width: int = 1280, height: int = 800, dark: bool = False) -> None:
        def go() -> None:
            self.driver.switch_to.default_content()
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            scheme = [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]
            self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": scheme})
            self.driver.get("about:blank")  # a fresh load, even of the URL already open
            self.driver.get(url)

        await self.run(go)

    async def resize(self, width: int, height: int) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        await self.run(lambda: self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics))

    async def wait(self, script: str, what: str, timeout: float = 60) -> Any:
        """Poll `script` until it returns something truthy."""
        with anyio.fail_after(timeout):
            while not (value := await self.js(script)):
                await anyio.sleep(0.2)
        return value

    async def enter_app_frame(self) -> None:
        """From the host page into the app's sandboxed iframe, once the bridge is up."""
        state = await self.wait("return window.hostState && (window.hostState.ready || window.hostState.error)", "host")
        assert state is True, f"the test host failed: {await self.js('return window.hostState.error')}"
        await self.run(lambda: self.driver.switch_to.frame(self.driver.find_element(By.TAG_NAME, "iframe")))

    async def host(self, script: str) -> Any:
        """Run `script` in the host page, then return into the app's frame."""

        def call() -> Any:
            self.driver.switch_to.default_content()
            try:
                return self.driver.execute_script(script)
            finally:
                self.driver.switch_to.frame(self.driver.find_element(By.TAG_NAME, "iframe"))

        return await self.run(call)

    async def page(self) -> dict:
        return await self.js(READ_PAGE)

    async def next_refresh(self, after: int, count: int = 1) -> dict:
        """The page's state once it has refreshed `count` times after refresh number `after`."""
        await self.wait(f"return +document.body.dataset.refreshes >= {after + count}", "refresh", timeout=30)
        return await self.page()

    async def screenshot(self, name: str) -> None:
        """Save the whole viewport (host and app) to docs/NAME, then carry on where we were."""

        def shoot() -> None:
            in_frame = self.driver.execute_script("return window !== window.top")
            self.driver.switch_to.default_content()
            self.driver.save_screenshot(str(DOCS / name))
            if in_frame:
                self.driver.switch_to.frame(self.driver.find_element(By.TAG_NAME, "iframe"))

        DOCS.mkdir(exist_ok=True)
        await self.run(shoot)

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    b = await anyio.to_thread.run_sync(Browser)
    yield b
    await anyio.to_thread.run_sync(b.quit)


async def engine_metrics(client: Client) -> dict:
    return json.loads((await client.read_resource("metrics://engine")).contents[0].text)


def shown(page: dict, element: str) -> float | None:
    value = page["nums"][element][0]
    return None if value == "" else float(value)


def assert_text(page: dict, element: str, fmt: Callable[[float], str]) -> None:
    """The element's text is its value formatted with its unit (rounding ties may differ by one last digit)."""
    value, text = shown(page, element), page["nums"][element][1]
    expected = "–" if value is None else fmt(value)
    if text == expected:
        return
    number = re.compile(r"-?[\d,]+\.?\d*")
    got, want = number.search(text), number.search(expected)
    assert got and want and number.sub("", text) == number.sub("", expected), (element, text, expected)
    digits = len(want.group().split(".")[1]) if "." in want.group() else 0
    assert abs(float(got.group().replace(",", "")) - float(want.group().replace(",", ""))) <= 10**-digits, (
        element,
        text,
        expected,
    )


STABLE = {  # page element → where metrics://engine has it, for figures that hold still while the engine is idle
    "running": ("engine", "running_requests"),
    "waiting": ("engine", "waiting_requests"),
    "kv": ("engine", "kv_cache_usage"),
    "prefix": ("engine", "prefix_cache_hit_rate"),
    "total-requests": ("totals", "requests"),
    **{f"lat-{k}-{q}": ("latency_ms", k, q) for k in SERIES for q in ("p50", "p95", "p99", "mean")},
}


def pick(metrics: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        metrics = metrics[key]
    return metrics


def stable(metrics: dict) -> dict:
    spec = metrics["engine"].get("speculative_decoding")
    return {k: pick(metrics, p) for k, p in STABLE.items()} | {"spec": spec["acceptance_rate"] if spec else None}


async def test_a_client_without_apps_gets_the_text_summary(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tools["dashboard"].meta["ui"] == {"resourceUri": dashboard.URI}
    assert tools["dashboard_data"].meta["ui"]["visibility"] == ["app"], "the refresh tool is for the app, not the model"
    await client.call_tool("generate", {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0})
    metrics = await engine_metrics(client)
    result = await client.call_tool("dashboard", {})
    assert not result.is_error and result.structured_content is None, "no Apps: text only"
    text = result.content[0].text
    assert text.startswith("mcp-llm dashboard: ") and "engine ready" in text
    for line in (
        "req/s",
        "output tok/s",
        "Latency p50 / p95 / p99: TTFT",
        "KV cache",
        "Jobs: ",
        "Models: ",
        "Adapters: ",
    ):
        assert line in text, (line, text)
    assert f"Totals: {metrics['totals']['requests']:.0f} requests" in text
    assert dashboard.ms(metrics["latency_ms"]["ttft_ms"]["p50"]) in text


async def test_an_apps_client_gets_the_data_and_the_page(app) -> None:
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with Client(app, extensions=[apps]) as client:
        result = await client.call_tool("dashboard", {})
        assert not result.is_error and "Latency p50" in result.content[0].text
        data = result.structured_content
        assert set(data["metrics"]) >= {"requests_per_s", "output_tokens_per_s", "latency_ms", "engine", "totals"}
        assert data["models"] and any(m["serving"] for m in data["models"])
        page = (await client.read_resource(dashboard.URI)).contents[0]
    assert page.mime_type == APP_MIME_TYPE
    html = page.text
    assert 'id="mcp-llm-config"' in html and "ui/initialize" in html
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), "the page fetches nothing from outside"
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", html), "one self-contained file"


async def test_get_dashboard_needs_the_token(site: str) -> None:
    async with httpx.AsyncClient(base_url=site, timeout=10) as http:
        refused = await http.get("/dashboard")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert "mcp-llm-config" not in refused.text and 'type="password"' in refused.text
        assert (await http.get("/dashboard", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await http.get("/dashboard", cookies={"mcp_llm_token": "wrong"})).status_code == 401
        page = await http.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'{{"endpoint": "/mcp", "token": "{TOKEN}"}}' in page.text
        assert "connect-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert (await http.get("/dashboard", cookies={"mcp_llm_token": TOKEN})).status_code == 200
        assert (await http.post("/mcp", json={})).status_code == 401, "the same tokens guard /mcp"


async def test_the_app_in_a_host_shows_what_metrics_engine_says(site: str, client: Client, browser: Browser) -> None:
    prompts = [f"Write a short line about the number {i}." for i in range(12)]
    done = await client.call_tool("batch", {"prompts": prompts, "max_tokens": 24, "temperature": 0})
    assert not done.is_error

    await browser.open(f"{site}/test-host#token={TOKEN}&theme=light")
    await browser.enter_app_frame()
    state = await browser.host("return window.hostState")
    assert state["appOnly"] == ["dashboard_data"] and "Latency p50" in state["toolText"]

    # The charts: lines of at least two points, throughput above zero after the traffic.
    def drawn(page: dict) -> bool:
        series = ("chart-tps:output", "chart-rps:requests", "chart-ttft:p50", "chart-tpot:p95", "chart-e2e:p99")
        lines = [page["paths"].get(s, []) for s in series]
        rising = [min(y for _, y in page["paths"][s]) < BASELINE_Y - 1 for s in series[:2] if page["paths"].get(s)]
        return all(len(line) >= 2 for line in lines) and len(rising) == 2 and all(rising)

    page = await browser.page()
    with anyio.fail_after(40):
        while not drawn(page):
            page = await browser.next_refresh(page["refreshes"])
    assert page["error"] == ""
    assert len(page["paths"]["chart-queue:running"]) >= 2

    # The numbers: read metrics://engine, let the page refresh after it, read metrics://engine again.
    fresh = {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
    await client.call_tool("generate", fresh)  # requests well inside the window, however long the charts took
    # The shared engine's window (60 s) still holds earlier tests' requests; while they leave it the figures move,
    # so wait for a refresh during which nothing left (at the latest once they have all gone).
    with anyio.move_on_after(90):
        while True:
            before = await engine_metrics(client)
            # two refreshes: the second one's data was asked for after `before` (the first may have been in flight)
            page = await browser.next_refresh((await browser.page())["refreshes"], count=2)
            after = await engine_metrics(client)
            if stable(before) == stable(after):
                break
    assert stable(before) == stable(after), "the engine did not hold still"
    for element, value in stable(before).items():
        assert shown(page, element) == value, (element, shown(page, element), value)
    for element, key in (("rps", "requests_per_s"), ("tps", "output_tokens_per_s")):  # rates fall while idle
        assert after[key] - 1e-9 <= shown(page, element) <= before[key] + 1e-9, (element, before[key], after[key])
    assert shown(page, "total-requests") >= 12 and shown(page, "lat-ttft_ms-p50") > 0
    assert_text(page, "rps", lambda v: f"{v:.2f}")
    assert_text(page, "tps", lambda v: f"{v:.1f}")
    assert_text(page, "kv", dashboard.pct)
    assert_text(page, "running", lambda v: f"{round(v):,}")
    assert_text(page, "total-requests", lambda v: f"{round(v):,}")
    for element in (e for e in STABLE if e.startswith("lat-")):
        assert_text(page, element, dashboard.ms)
    assert page["nums"]["spec"][1] == "off" or "%" in page["nums"]["spec"][1]

    # No layout shift on refresh; the refreshes went through the app bridge.
    later = await browser.next_refresh(page["refreshes"])
    assert later["boxes"] == page["boxes"], "the layout moved on refresh"
    log = await browser.host("return window.hostLog")
    assert {"from": "app", "method": "ui/initialize", "name": None} in log
    assert sum(e.get("name") == "dashboard_data" for e in log) >= 2
    await browser.screenshot("dashboard.png")

    # Dark, when the host says so.
    light = await browser.js("return getComputedStyle(document.body).backgroundColor")
    await browser.host("window.setHostTheme('dark')")
    await browser.wait("return document.documentElement.dataset.theme === 'dark'", "dark theme")
    dark = await browser.js("return getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(247, 248, 250)" and dark == "rgb(17, 20, 24)"
    await browser.screenshot("dashboard-dark.png")

    # 400 px wide (a host's side panel): nothing runs off the side, the charts are drawn at that width.
    await browser.host("window.setHostTheme('light')")
    await browser.resize(400, 900)
    page = await browser.next_refresh((await browser.page())["refreshes"])
    width = await browser.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1] <= 400, width
    assert max(x for x, _ in page["paths"]["chart-tps:output"]) <= 400
    await browser.screenshot("dashboard-narrow.png")


async def test_a_running_job_moves_and_its_cancel_button_cancels_it(
    site: str, client: Client, services: Services, browser: Browser
) -> None:
    prompts = [f"Item {i}: count on from {i}" for i in range(1500)]
    args = {"prompts": prompts, "max_tokens": 16, "ignore_eos": True, "temperature": 0, "wait": False}
    started = await client.call_tool("batch", args)
    job_id = started.structured_content["job"]["job_id"]
    row = f"document.querySelector('.job[data-job=\"{job_id}\"]')"
    try:
        await browser.open(f"{site}/test-host#token={TOKEN}&theme=light")
        await browser.enter_app_frame()
        await browser.wait(f"return {row} && {row}.dataset.status === 'running' && +{row}.dataset.done > 0", "job")
        first = await browser.js(f"return [+{row}.dataset.done, {row}.querySelector('.text').textContent]")
        with anyio.fail_after(40):
            while (now := await browser.js(f"return [+{row}.dataset.done, {row}.dataset.status]"))[0] <= first[0]:
                await anyio.sleep(0.3)
        assert now[1] == "running" and now[0] > first[0], "progress moves"
        assert re.match(r"\d+/1500 items, 0 failed, \d+ tok/s, \d+s so far", first[1]), first[1]
        status = (await client.call_tool("job_status", {"job_id": job_id})).structured_content
        assert now[0] <= status["completed"] + status["failed"] < 1500
        bar = await browser.js(f"return {row}.querySelector('.bar > div').style.width")
        assert 0 < float(bar.rstrip("%")) < 100
        await browser.resize(1280, await browser.host("return document.body.scrollHeight"))  # the whole page
        await browser.next_refresh((await browser.page())["refreshes"])
        await browser.screenshot("dashboard-job.png")
        assert services.engine.num_unfinished_requests() > 0

        await browser.run(
            lambda: browser.driver.find_element(By.CSS_SELECTOR, f'.job[data-job="{job_id}"] button').click()
        )
        with anyio.fail_after(30):
            while (status := (await client.call_tool("job_status", {"job_id": job_id})).structured_content)[
                "status"
            ] != "cancelled":
                await anyio.sleep(0.2)
        assert status["completed"] < 1500
        with anyio.fail_after(15):
            while (
                services.engine.num_unfinished_requests()
                or (await engine_metrics(client))["engine"]["running_requests"]
            ):
                await anyio.sleep(0.2)
        await browser.wait(f"return {row}.dataset.status === 'cancelled'", "cancelled row")
        assert await browser.js(f"return getComputedStyle({row}.querySelector('button')).visibility") == "hidden"
    finally:
        if (await client.call_tool("job_status", {"job_id": job_id})).structured_content["status"] == "running":
            await client.call_tool("cancel_job", {"job_id": job_id})


async def test_the_page_at_get_dashboard_signs_in_and_refreshes_through_mcp(
    site: str, client: Client, browser: Browser
) -> None:
    await browser.open(f"{site}/dashboard", dark=True)
    await browser.run(lambda: browser.driver.find_element(By.ID, "t").send_keys(TOKEN))
    await browser.run(lambda: browser.driver.find_element(By.CSS_SELECTOR, "button").click())
    await browser.wait("return +(document.body && document.body.dataset.refreshes) >= 2", "page refreshes")
    page = await browser.page()
    assert page["error"] == ""
    assert await browser.js("return document.getElementById('status').textContent") == "live"
    assert await browser.js("return document.documentElement.dataset.theme") == "dark", "follows the browser"
    for _attempt in range(3):
        metrics = await engine_metrics(client)
        page = await browser.next_refresh(page["refreshes"])
        if shown(page, "total-requests") == metrics["totals"]["requests"]:
            break
    assert shown(page, "total-requests") == metrics["totals"]["requests"]
    assert len(page["paths"]["chart-tps:output"]) >= 2
    await browser.screenshot("dashboard-http-dark.png")
