"""Door 5 in the web: a deploy from a form or an async API call is a job; sync API deploys
may hold at most half a worker's threads."""

from __future__ import annotations

import threading
import time

from paas.services import config as config_service
from tests.web.conftest import Site, bearer, finish_job, post_form


def test_a_deploy_form_answers_at_once_with_its_job_then_flashes_its_outcome(site: Site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    real = config_service.set_config

    def slow(ctx, app, changes, log):  # type: ignore[no-untyped-def]
        log.step("Deploying")
        gate.wait(10)
        return real(ctx, app, changes, log)

    monkeypatch.setattr(config_service, "set_config", slow)
    client = site.login()
    started = time.monotonic()
    resp = post_form(client, "/apps/demo/config", {"key": "A", "value": "b"}, page="/apps/demo")
    assert resp.status_code == 303 and time.monotonic() - started < 5
    job_page = client.get(resp.headers["Location"])
    assert 'data-state="queued"' in job_page.text or 'data-state="running"' in job_page.text
    assert "data-done=" in job_page.text  # the script goes back to the app when it succeeds
    gate.set()
    page = finish_job(client, resp)
    assert 'data-state="succeeded"' in page.text and "Set A" in page.text
    assert site.ctx.store.get_config(site.ctx.store.get_app("demo").id) == {"A": "b"}
    done = client.get(resp.headers["Location"].split("?")[0] + "/done?back=config")
    assert done.status_code == 303 and done.headers["Location"].endswith("/apps/demo#config")
    assert "Set A. Not restarted" in client.get("/apps/demo").text  # flashed once ...
    assert "Set A. Not restarted" not in client.get("/apps/demo").text  # ... not again


def test_a_bad_form_goes_back_with_the_error_and_starts_no_job(site: Site) -> None:
    client = site.login()
    resp = post_form(client, "/apps/demo/config", {"key": "1BAD", "value": "b"}, page="/apps/demo")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/apps/demo#config")
    assert "invalid config key" in client.get("/apps/demo").text.lower()
    assert not (site.ctx.settings.data_dir / "jobs" / "demo").exists()


def test_a_job_is_only_for_those_who_may_run_it(site: Site) -> None:
    client = site.login()
    resp = post_form(client, "/apps/demo/config", {"key": "A", "value": "b"}, page="/apps/demo")
    finish_job(client, resp)
    other = site.login("bob")  # no access to demo
    assert other.get(resp.headers["Location"]).status_code == 404
    assert other.get(resp.headers["Location"].split("?")[0] + "/stream").status_code == 404


def test_the_api_starts_a_job_when_asked_to_respond_async(site: Site) -> None:
    client, h = site.client(), bearer(site.admin_token)
    resp = client.patch("/api/v1/apps/demo/config", headers={**h, "Prefer": "respond-async"}, json={"K": "v"})
    assert resp.status_code == 202 and resp.headers["Preference-Applied"] == "respond-async"
    job = resp.json
    assert resp.headers["Location"] == job["url"] and job["state"] in ("queued", "running", "succeeded")
    deadline = time.monotonic() + 10
    while (got := client.get(job["url"], headers=h).json)["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert got["state"] == "succeeded" and isinstance(got["output"], list)
    assert client.get("/api/v1/apps/demo/config", headers=h).json == {"K": "v"}
    stream = client.get(job["url"] + "/stream", headers=h)
    assert stream.status_code == 200 and "event: done" in stream.text and '"succeeded"' in stream.text
    refused = client.patch(
        "/api/v1/apps/demo/config", headers={**h, "Prefer": "respond-async"}, json={"K": 1}
    )
    assert refused.status_code == 400  # the body is checked before any job starts


def test_synchronous_api_deploys_hold_at_most_their_share_of_threads(site: Site) -> None:
    slots = site.ctx.shared("api-deploy-slots", lambda: threading.BoundedSemaphore(1))
    client, h = site.client(), bearer(site.admin_token)
    assert slots.acquire(blocking=False)  # another request is waiting on a deploy
    try:
        busy = client.patch("/api/v1/apps/demo/config", headers=h, json={"K": "v"})
        assert busy.status_code == 429 and int(busy.headers["Retry-After"]) > 0
        assert client.get("/api/v1/apps", headers=h).status_code == 200  # reads are not held back
    finally:
        slots.release()
    assert client.patch("/api/v1/apps/demo/config", headers=h, json={"K": "v"}).status_code == 200
