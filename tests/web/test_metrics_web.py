"""The metrics plugin's page section, history API and Prometheus text, through Flask's client."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from paas.plugins import plugins
from tests.web.conftest import Site, bearer

plugins(set())
from paas_plugins.metrics import service  # noqa: E402
from paas_plugins.metrics.stats import Stats  # noqa: E402


def _traffic(site: Site) -> None:
    app = site.ctx.store.get_app("demo")
    for description in ("Deploy aaaaaaa", "Deploy bbbbbbb"):
        r = site.ctx.store.create_release(app.id, None, {}, {"web": 1}, description, "alice")
        site.ctx.store.set_release_status(r.id, "succeeded")
    now = time.time()
    ok, bad = Stats(), Stats()
    for _ in range(40):
        ok.add(200, 120, 0.004)
    for _ in range(5):
        bad.add(500, 90, 0.2)
    bucket = int(now - 60) // 10 * 10
    service.history(site.ctx).add_requests(
        {("demo", 1, bucket): ok, ("demo", 2, bucket + 10): bad}, None, now
    )
    service.history(site.ctx).add_processes(now - 30, {("demo", "web"): (3.5, 40 << 20)})


def test_the_app_page_charts_requests_with_release_markers(site: Site) -> None:
    _traffic(site)
    page = site.login().get("/apps/demo").text
    assert 'id="requests"' in page
    for title in ("Requests", "Upstream p95", "CPU", "Memory"):
        assert f'data-chart="{title}"' in page
    assert page.count('class="release-marker"') == 8  # v1 and v2 on each of the 4 charts
    assert ">v2</text>" in page and "requests <strong>45</strong>" in page
    assert 'href="?range=24h#requests"' in page
    day = site.login().get("/apps/demo?range=24h").text
    assert 'aria-current="true">24h<' in day
    odd = site.login().get("/apps/demo?range=1y%3Cscript%3E").text  # an unknown range is 1h
    assert 'aria-current="true">1h<' in odd and "<script>" not in odd.split('id="requests"')[1][:3000]


def test_the_history_api_and_its_access(site: Site) -> None:
    _traffic(site)
    client = site.client()
    resp = client.get("/api/v1/apps/demo/metrics/history?since=1h", headers=bearer(site.admin_token))
    assert resp.status_code == 200
    body = resp.json
    assert body["requests"]["requests"] == 45 and body["requests"]["5xx"] == 5
    assert [r["release"] for r in body["releases"]] == [2, 1]
    bad = client.get("/api/v1/apps/demo/metrics/history?since=forever", headers=bearer(site.admin_token))
    assert bad.status_code == 400 and "since" in bad.json["message"]
    hidden = client.get("/api/v1/apps/demo/metrics/history", headers=bearer(site.user_token))
    assert hidden.status_code == 404  # bob cannot view demo: it does not exist for him


def test_prometheus_text_is_for_admins(site: Site) -> None:
    _traffic(site)
    client = site.client()
    assert client.get("/api/v1/metrics", headers=bearer(site.user_token)).status_code == 403
    resp = client.get("/api/v1/metrics", headers=bearer(site.admin_token))
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families["paas_requests"].samples}
    assert samples[("paas_requests_total", (("app", "demo"), ("code", "2xx"), ("release", "1")))] == 40
    assert samples[("paas_requests_total", (("app", "demo"), ("code", "5xx"), ("release", "2")))] == 5
    hist = {
        (s.name, s.labels.get("le")): s.value
        for s in families["paas_upstream_response_seconds"].samples
        if s.labels["release"] == "2"
    }
    assert hist[("paas_upstream_response_seconds_bucket", "+Inf")] == 5
    assert hist[("paas_upstream_response_seconds_bucket", "0.1")] == 0
    assert hist[("paas_upstream_response_seconds_bucket", "0.25")] == 5
    assert {s.labels["type"] for s in families["paas_process_cpu_percent"].samples} == {"web"}
