"""Quotas on the dashboard and the API (issue 27): every user reads their own usage; a change past
a quota is refused through the same service line, as a page or JSON with 403 quota_exceeded."""

from __future__ import annotations

from paas.services import quotas
from tests.web.conftest import Site, bearer, post_form


def test_the_apps_page_shows_your_own_quotas(site: Site) -> None:
    quotas.set_quotas(site.ctx, "bob", ["apps=1"])
    client = site.login("bob")
    page = client.get("/").text
    assert "Your quotas" in page and "admin: not held" not in page
    assert '<tr data-quota="apps"><td>apps</td><td>0</td><td>1</td></tr>' in page
    assert '<tr data-quota="memory"><td>memory</td><td>0</td><td>4g</td></tr>' in page
    created = post_form(client, "/apps", {"name": "bobs"})
    assert created.status_code == 303
    page = client.get("/").text
    assert '<tr data-quota="apps" class="full"><td>apps</td><td>1</td><td>1</td></tr>' in page
    refused = post_form(client, "/apps", {"name": "bobs-two"})  # flashed on the apps page
    assert refused.status_code == 303
    assert "over the apps quota of bob (1): they own 1 app(s) already" in client.get("/").text
    assert site.ctx.store.get_app("bobs-two") is None
    assert "admin: not held by them" in site.login("alice").get("/").text


def test_the_api_gives_the_tokens_user_their_quotas(site: Site) -> None:
    client = site.client()
    resp = client.get("/api/v1/account/quotas", headers=bearer(site.user_token))
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["user"] == "bob" and data["admin"] is False and data["disk"] == {}
    assert data["quotas"]["apps"] == {"limit": 10, "used": 0, "default": True}
    assert set(data["quotas"]) == set(quotas.QUOTAS)
    quotas.set_quotas(site.ctx, "bob", ["apps=0"])
    refused = client.post("/api/v1/apps", json={"name": "nope"}, headers=bearer(site.user_token))
    assert refused.status_code == 403
    assert refused.get_json() == {
        "id": "quota_exceeded",
        "message": "over the apps quota of bob (0): they own 0 app(s) already",
    }
