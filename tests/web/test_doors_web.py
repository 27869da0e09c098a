"""Door 6: a failed deploy's output waits in the store, not in the session cookie."""

from __future__ import annotations

import secrets

from paas.errors import PaasError
from paas.services import config as config_service
from paas.services import users
from tests.web.conftest import Site, bearer, finish_job, post_form


def test_a_failed_deploys_output_never_goes_into_the_cookie(site: Site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Before: up to 15 lines of 8 KiB went into the signed cookie (browsers drop it over 4 KiB).
    Now the deploy is a job: its output is in a file under the data dir, shown on its page."""

    def failing(ctx, app, changes, log):  # type: ignore[no-untyped-def]
        for i in range(15):
            log.line(f"line {i} " + secrets.token_hex(4000))  # (zlib would shrink repeats)
        raise PaasError("the new processes did not pass their checks")

    monkeypatch.setattr(config_service, "set_config", failing)
    client = site.login()
    resp = post_form(client, "/apps/demo/config", {"key": "A", "value": "b"}, page="/apps/demo")
    assert resp.status_code == 303
    page = finish_job(client, resp)
    for r in (resp, page):
        for header in r.headers.getlist("Set-Cookie"):
            assert len(header) < 1024, len(header)
    assert 'data-state="failed"' in page.text
    assert "the new processes did not pass their checks" in page.text
    assert "line 0 " in page.text and "line 14 " in page.text


def test_bad_tokens_get_429_after_the_limit(site: Site) -> None:
    client = site.client()
    for i in range(users.MAX_TOKEN_FAILURES):
        assert client.get("/api/v1/apps", headers=bearer(f"paas_guess{i}")).status_code == 401
    locked = client.get("/api/v1/apps", headers=bearer(site.admin_token))
    assert locked.status_code == 429 and locked.json["id"] == "rate_limited"
    assert int(locked.headers["Retry-After"]) > 0
