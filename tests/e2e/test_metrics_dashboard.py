"""The app page's request charts in Chromium (headless, Playwright), with a release marker; the
screenshot is kept in artifacts/screenshots/metrics.png for a person to look at."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.conftest import PaasServer, wait_for
from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS, SHOTS

pytestmark = pytest.mark.e2e
PASSWORD = "metrics viewer password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_the_app_page_charts_requests_with_a_release_marker(paas: PaasServer, browser: Browser) -> None:
    app = paas.deploy_new_app("stdlib-web", "charts")
    host = f"{app}.localhost"
    for _ in range(40):
        paas.get(host)
        time.sleep(0.05)
    changed = paas.ssh("config:set", app, "GREETING=hi")  # v2: a release to mark
    assert changed.returncode == 0, changed.output
    for _ in range(40):
        paas.get(host)
        time.sleep(0.05)

    def counted() -> dict | None:
        data = json.loads(paas.ssh("metrics", app, "--format", "json").stdout)
        releases = {r["release"] for r in data["releases"]}
        cpu = data["process_series"].get("web", [])
        return data if {1, 2} <= releases and len(cpu) >= 2 else None

    # Two CPU samples: a sampling round (every 10 s) reads every app of the shared server, which
    # under the suite's four workers holds many: 40 s was once too short.
    assert wait_for(counted, timeout=90, interval=2), paas.ssh("metrics", app).output
    paas.add_user("mira", PASSWORD)
    assert paas.host("access:add", app, "mira").returncode == 0
    context = browser.new_context(
        base_url=f"http://paas.localhost:{paas.http_port}", viewport={"width": 1280, "height": 900}
    )
    try:
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("User").fill("mira")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/$"))
        page.goto(f"/apps/{app}?range=15m#requests")
        section = page.locator("#requests")
        expect(section).to_be_visible()
        requests_chart = section.locator("figure[data-chart='Requests']")
        expect(requests_chart.locator("polyline").first).to_be_visible()
        marker = requests_chart.locator(".release-marker", has_text="v2")
        expect(marker).to_have_count(1)
        box = requests_chart.locator("svg").bounding_box()
        line = marker.locator("line").bounding_box()
        assert box and line and box["x"] < line["x"] < box["x"] + box["width"]  # inside the chart
        cpu = section.locator("figure[data-chart='CPU'] polyline")  # an idle app's may be flat: no height
        expect(cpu).to_have_count(1)
        assert len((cpu.get_attribute("points") or "").split()) >= 2
        section.scroll_into_view_if_needed()
        SHOTS.mkdir(parents=True, exist_ok=True)
        section.screenshot(path=str(SHOTS / "metrics.png"))
        page.get_by_role("link", name="24h").click()
        expect(page.locator("#requests .ranges a.current")).to_have_text("24h")
        day = page.locator("#requests figure[data-chart='Requests'] .release-marker")
        expect(day).to_have_count(2)  # v1 and v2 are a minute apart: two lines, one label
        expect(day.locator("text")).to_have_text(["v2"])
    finally:
        context.close()
