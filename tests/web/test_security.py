"""Security of the dashboard and API: anonymous access, CSRF, escaping, throttling, cookies."""

from __future__ import annotations

import re

import pytest

from paas.services import users
from paas.web import create_app
from tests.web.conftest import PASSWORD, Site, bearer, csrf_token, post_deploy, post_form

SAMPLE_ARGS = {
    "app": "demo",
    "version": "1",
    "hostname": "www.example.com",
    "ptype": "web",
    "filename": "app.css",
    "kind": "postgres",
    "name": "db",
    "backup_id": "20260101T000000Z",
    "job_id": "0123456789abcdef",
}
PUBLIC = {"auth.login", "static"}


def every_route(site: Site) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every rule of the app, with sample arguments."""
    out = []
    for rule in site.app.url_map.iter_rules():
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE_ARGS[m.group(1)], rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, url))
    return out


def test_every_route_but_login_refuses_anonymous_access(site: Site) -> None:
    routes = every_route(site)
    assert len(routes) > 30  # the pages and the API are all there
    client = site.client()
    checked = 0
    for endpoint, method, url in routes:
        if endpoint in PUBLIC:
            continue
        resp = client.open(url, method=method, json={} if url.startswith("/api/") else None)
        if url.startswith("/api/"):
            assert resp.status_code == 401, (method, url, resp.status_code)
            assert resp.json["id"] == "unauthorized"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert resp.status_code in (302, 303), (method, url, resp.status_code)
            assert resp.headers["Location"].startswith("/login"), (method, url)
        checked += 1
    assert checked == len(routes) - sum(1 for e, _, _ in routes if e in PUBLIC)
    # Nothing changed on the way.
    assert [a.name for a in site.ctx.store.list_apps()] == ["demo"]
    # Paths no route knows are refused the same way, and a made-up token is no token.
    assert client.get("/no/such/page").headers["Location"].startswith("/login")
    assert client.get("/api/v1/apps", headers=bearer("paas_" + "x" * 43)).status_code == 401
    assert client.get("/api/v1/apps", headers={"Authorization": site.admin_token}).status_code == 401


def test_static_files_hold_no_data_and_stay_inside_their_folder(site: Site) -> None:
    client = site.client()
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/../pages.py").status_code in (302, 404)


def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    client = site.login()
    resp = client.post("/apps", data={"name": "sneaky"})
    assert resp.status_code == 400
    assert "CSRF" in resp.text
    resp = client.post("/apps/demo/config", data={"key": "K", "value": "v", "csrf_token": "forged"})
    assert resp.status_code == 400
    assert site.ctx.store.get_app("sneaky") is None
    assert site.ctx.store.get_config(site.ctx.store.get_app("demo").id) == {}
    # The same forms with the token go through.
    assert post_form(client, "/apps", {"name": "welcome"}).status_code == 303
    assert site.ctx.store.get_app("welcome") is not None


def test_logout_needs_the_csrf_token_too(site: Site) -> None:
    client = site.login()
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_config_values_are_masked_until_revealed_and_always_escaped(site: Site) -> None:
    evil = "<script>alert(1)</script>"
    client = site.login()
    post_deploy(client, "/apps/demo/config", {"key": "EVIL", "value": evil}, page="/apps/demo")
    assert site.ctx.store.get_config(site.ctx.store.get_app("demo").id) == {"EVIL": evil}
    masked = client.get("/apps/demo")
    assert "EVIL" in masked.text and "alert(1)" not in masked.text
    shown = client.get("/apps/demo?reveal=1")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert evil not in shown.text
    assert "default-src 'self'" in shown.headers["Content-Security-Policy"]  # no inline scripts run


def test_five_wrong_passwords_lock_that_name_from_that_address(site: Site) -> None:
    client = site.client()
    for _ in range(users.MAX_FAILURES):
        resp = post_form(client, "/login", {"username": "alice", "password": "wrong password"})
        assert resp.status_code == 401
        assert "invalid user name or password" in resp.text
    # The right password is refused too while the lock holds ...
    resp = post_form(client, "/login", {"username": "alice", "password": PASSWORD})
    assert resp.status_code == 429
    assert "too many failed logins" in resp.text
    assert 0 < int(resp.headers["Retry-After"]) <= users.FAILURE_WINDOW
    # ... in every worker (another app instance on the same store) ...
    other = create_app(ctx=site.ctx.for_actor(None, False)).test_client()
    assert post_form(other, "/login", {"username": "alice", "password": PASSWORD}).status_code == 429
    # ... but only for that name from that address (nginx reports the browser's in X-Real-IP).
    elsewhere = post_form(
        client, "/login", {"username": "alice", "password": PASSWORD}, headers={"X-Real-IP": "192.0.2.7"}
    )
    assert elsewhere.status_code == 303
    assert site.login("bob").get("/").status_code == 200
    events = [e["action"] for e in site.ctx.store.list_events(50)]
    assert "login:locked" in events


def test_the_lock_ends_when_the_failures_age_out(site: Site) -> None:
    ctx = site.ctx
    for i in range(users.MAX_FAILURES):
        with pytest.raises(users.Unauthenticated):
            users.login(ctx, "alice", "nope", "198.51.100.1", at=1000.0 + i)
    with pytest.raises(users.Throttled):
        users.login(ctx, "alice", PASSWORD, "198.51.100.1", at=1010.0)
    later = 1000.0 + users.FAILURE_WINDOW + 1
    assert users.login(ctx, "alice", PASSWORD, "198.51.100.1", at=later).name == "alice"


def test_session_cookie_is_httponly_lax_and_secure_behind_https(site: Site) -> None:
    client = site.client()
    resp = post_form(client, "/login", {"username": "alice", "password": PASSWORD})
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("paas_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    # Over HTTPS the cookie is `__Host-` prefixed: Secure, Path=/, no Domain (browsers enforce it).
    https = site.client()
    proto = {"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"}
    page = https.get("/login", headers=proto, base_url="https://localhost")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    resp = https.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
        headers=proto,
        base_url="https://localhost",
    )
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-paas_session=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert https.get("/", headers=proto, base_url="https://localhost").status_code == 200


def test_logout_ends_the_session_on_the_server(site: Site) -> None:
    client = site.login()
    stolen = client.get_cookie("paas_session").value
    assert post_form(client, "/logout", {}).status_code == 303
    replay = site.client()
    replay.set_cookie("paas_session", stolen)
    assert replay.get("/").status_code == 302


def test_login_only_redirects_within_the_site(site: Site) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client = site.client()
        token = csrf_token(client)
        resp = client.post(
            "/login", data={"username": "alice", "password": PASSWORD, "next": target, "csrf_token": token}
        )
        assert resp.headers["Location"] == "/", target
    client = site.client()
    assert client.get("/apps/demo").headers["Location"] == "/login?next=/apps/demo"


def test_api_refuses_what_the_token_user_may_not_do(site: Site) -> None:
    client = site.client()
    resp = client.get("/api/v1/users", headers=bearer(site.user_token))
    assert resp.status_code == 403
    assert resp.json == {"id": "forbidden", "message": "only an admin may run users:list"}
    names = [u["name"] for u in client.get("/api/v1/users", headers=bearer(site.admin_token)).json]
    assert names == ["alice", "bob"]
    # A revoked token is refused at once.
    [token] = [t for t in users.list_tokens(site.ctx) if t.user == "bob"]
    users.revoke_token(site.ctx, token.id)
    assert client.get("/api/v1/account", headers=bearer(site.user_token)).status_code == 401


def test_pages_send_protective_headers(site: Site) -> None:
    resp = site.login().get("/")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    assert not re.search(r"<script>(?!</script>)", resp.text)  # no inline scripts
