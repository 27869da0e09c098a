"""Teams on the dashboard (issue 12): each role sees only the buttons the permission table lets it
use, a forged POST is refused anyway (403, or 404 for an app the role cannot view), the Access
panel and the admins' Users page act through the services, and every new form needs its CSRF token."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from paas.services import access, users
from tests.web.conftest import PASSWORD, Site, csrf_token, post_form

ROLES = ("none", "view", "deploy", "operate", "manage", "owner", "admin")

# A form on the app page: the marker that shows it, and the operation the table gives it.
APP_FORMS: dict[str, tuple[str, str]] = {
    "scale": ('action="/apps/demo/scale"', "ps:scale"),
    "restart": ('action="/apps/demo/restart"', "ps:restart"),
    "stop": ('action="/apps/demo/stop"', "ps:stop"),
    "config set": ('action="/apps/demo/config"', "config:set"),
    "config unset": ('action="/apps/demo/config/unset"', "config:unset"),
    "reveal": ('id="reveal"', "config:values"),
    "domain add": ('action="/apps/demo/domains"', "domains:add"),
    "domain remove": ('action="/apps/demo/domains/remove"', "domains:remove"),
    "rollback": ('action="/apps/demo/rollback"', "releases:rollback"),
    "build output": ('href="/apps/demo/releases/1/build"', "builds:output"),
    "access": ('id="access"', "access"),
    "access add": ('action="/apps/demo/access"', "access:add"),
    "transfer": ('action="/apps/demo/transfer"', "apps:transfer"),
    "destroy": ('action="/apps/demo/destroy"', "apps:destroy"),
}

# Forged POSTs: path, form, and the operation they need (each would change something lasting).
FORGED: list[tuple[str, dict[str, str], str]] = [
    ("/apps/demo/scale", {"type": "web", "quantity": "3"}, "ps:scale"),
    ("/apps/demo/stop", {}, "ps:stop"),
    ("/apps/demo/config", {"key": "FORGED", "value": "1"}, "config:set"),
    ("/apps/demo/config/unset", {"key": "SECRET"}, "config:unset"),
    ("/apps/demo/domains", {"hostname": "forged.example.com"}, "domains:add"),
    ("/apps/demo/domains/remove", {"hostname": "www.demo.example"}, "domains:remove"),
    ("/apps/demo/access", {"user": "none", "permissions": "manage"}, "access:add"),
    ("/apps/demo/access/update", {"user": "view", "permissions": "manage"}, "access:update"),
    ("/apps/demo/access/remove", {"user": "view"}, "access:remove"),
    ("/apps/demo/transfer", {"user": "view"}, "apps:transfer"),
    ("/apps/demo/destroy", {"confirm": "demo"}, "apps:destroy"),
]


def allowed(role: str, operation: str) -> bool:
    needed = access.OPERATIONS[operation]
    return role in ("owner", "admin") or (role != "none" and needed in ("view", role))


@pytest.fixture
def team(site: Site) -> Site:
    """One user per role on `demo` (owned by `owner`), with a process type, a config var, a
    custom domain and a deployed release, so that every button has something to act on."""
    ctx = site.ctx
    for role in ROLES:
        users.add_user(ctx, role, PASSWORD, admin=role == "admin")
    app = ctx.store.get_app("demo")
    ctx.store.set_owner(app.id, ctx.store.get_user("owner").id)
    for perm in access.PERMISSIONS:
        access.add_access(ctx, "demo", perm, perm)
    ctx.store.set_formation(app.id, {"web": 1})
    ctx.store.replace_config(app.id, {"SECRET": "hunter22-value"})
    ctx.store.replace_domains(app.id, ["www.demo.example"])
    build = ctx.store.create_build(app.id, "abc1234", "owner")
    ctx.store.finish_build(build, "succeeded", "-----> done", "paas/app-demo:1", {"web": "x"}, "python")
    for what in ("Deploy abc1234", "Set SECRET"):  # v1 can be rolled back to, v2 is current
        release = ctx.store.create_release(
            app.id, build, {"SECRET": "hunter22-value"}, {"web": 1}, what, "owner"
        )
        ctx.store.set_release_status(release.id, "succeeded")
    return site


def state(site: Site) -> tuple:
    """Everything a forged POST could change."""
    store = site.ctx.store
    app = store.get_app("demo")
    if app is None:
        return ("destroyed",)
    grants = tuple((g.user, g.permissions) for g in store.grants(app.id))
    return (
        app.owner_id,
        store.get_formation(app.id),
        store.get_config(app.id),
        store.list_domains(app.id),
        grants,
        app.stopped,
    )


def test_each_role_sees_only_the_buttons_it_may_use(team: Site) -> None:
    for role in ROLES:
        client = team.login(role)
        page = client.get("/apps/demo")
        if role == "none":
            assert page.status_code == 404 and "app &#39;demo&#39; does not exist" in page.text
            assert 'data-app="demo"' not in client.get("/").text
            continue
        assert page.status_code == 200, (role, page.status_code)
        shown = {name for name, (marker, _) in APP_FORMS.items() if marker in page.text}
        wanted = {name for name, (_, op) in APP_FORMS.items() if allowed(role, op)}
        assert shown == wanted, role
        # Config keys for everyone who may view; values only with deploy, even asked for.
        assert 'data-key="SECRET"' in page.text
        revealed = client.get("/apps/demo?reveal=1").text
        assert ("hunter22-value" in revealed) is allowed(role, "config:values"), role
        # The app list: destroy only with manage; creating apps is open to everyone by default.
        listing = client.get("/").text
        assert 'data-app="demo"' in listing
        assert ('action="/apps/demo/destroy"' in listing) is allowed(role, "apps:destroy"), role
        assert 'action="/apps"' in listing


def test_a_forged_post_is_refused_for_a_role_without_the_permission(team: Site) -> None:
    before = state(team)
    for role in ("none", "view", "deploy", "operate"):
        client = team.login(role)
        token = csrf_token(client, "/")
        for path, form, operation in FORGED:
            if allowed(role, operation):
                continue
            resp = client.post(path, data={**form, "csrf_token": token})
            want = 404 if role == "none" else 403
            assert resp.status_code == want, (role, path, resp.status_code)
            if role == "none":
                assert "app &#39;demo&#39; does not exist" in resp.text
            else:
                needed = access.OPERATIONS[operation]
                assert f"you need the &#39;{needed}&#39; permission on &#39;demo&#39;" in resp.text
        assert state(team) == before, role
    # The denials are in the admins' audit log, with who tried.
    denied = [e for e in team.ctx.store.list_events(200) if e["action"] == "access:denied"]
    assert {e["user"] for e in denied} == {"none", "view", "deploy", "operate"}


def test_creating_apps_kept_to_admins_hides_the_form(team: Site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(team.ctx, "settings", replace(team.ctx.settings, app_create="admins"))
    assert 'action="/apps"' not in team.login("owner").get("/").text
    assert 'action="/apps"' in team.login("admin").get("/").text


def access_form(client: FlaskClient, path: str, data: dict) -> str:
    """POST a form of the Access panel; the flash message it leads to."""
    resp = post_form(client, path, data, page="/apps/demo", follow_redirects=True)
    assert resp.status_code == 200, resp.text
    found = re.search(r'<div class="flash flash-(\w+)"[^>]*>\s*<p>(.*?)</p>', resp.text, re.S)
    assert found, resp.text
    return f"{found.group(1)}: {found.group(2)}"


def test_the_access_panel_adds_changes_and_removes_collaborators(team: Site) -> None:
    ctx, app = team.ctx, team.ctx.store.get_app("demo")
    users.add_user(ctx, "dana", None)
    manager = team.login("manage")
    page = manager.get("/apps/demo").text
    assert re.search(r'data-user="owner".*?owner', page, re.S)  # the owner, then each collaborator
    assert re.search(r'aria-label="deploy for deploy"\s+checked>', page)  # each one's boxes ticked
    assert re.search(r'aria-label="operate for deploy"\s+>', page)
    assert access_form(manager, "/apps/demo/access", {"user": "dana", "permissions": ["deploy"]}) == (
        "ok: dana may now view, deploy demo"
    )
    assert ctx.store.grant_of(app.id, ctx.store.get_user("dana").id) == ("view", "deploy")
    assert access_form(
        manager, "/apps/demo/access/update", {"user": "dana", "permissions": ["operate", "manage"]}
    ) == ("ok: dana may now view, operate, manage demo")
    assert access_form(manager, "/apps/demo/access/update", {"user": "dana"}) == "ok: dana may now view demo"
    # The service's own words for what it refuses.
    assert (
        access_form(manager, "/apps/demo/access", {"user": "nosuch"})
        == "error: no user named &#39;nosuch&#39;"
    )
    assert access_form(manager, "/apps/demo/access", {"user": "dana"}).startswith(
        "error: dana already has access"
    )
    assert access_form(manager, "/apps/demo/access", {"user": "<b>x</b>"}).startswith("error: invalid")
    assert (
        access_form(manager, "/apps/demo/access/remove", {"user": "dana"})
        == "ok: dana has no access to demo any more"
    )
    assert ctx.store.grant_of(app.id, ctx.store.get_user("dana").id) is None
    # A collaborator with manage may not transfer; the owner may, and keeps view, deploy, operate.
    assert 'action="/apps/demo/transfer"' not in page
    owner = team.login("owner")
    assert access_form(owner, "/apps/demo/transfer", {"user": "dana"}) == "ok: demo now belongs to dana"
    assert ctx.store.get_app("demo").owner_id == ctx.store.get_user("dana").id
    assert ctx.store.grant_of(app.id, ctx.store.get_user("owner").id) == ("view", "deploy", "operate")
    assert 'id="access"' not in owner.get("/apps/demo").text  # no manage any more
    actions = [
        (e["user"], e["action"])
        for e in ctx.store.list_events(50)
        if e["action"].startswith(("access:", "apps:transfer"))
    ]
    assert ("manage", "access:add") in actions and ("owner", "apps:transfer") in actions


def test_the_admins_datalist_names_users_and_nobody_elses_does(team: Site) -> None:
    assert '<datalist id="known-users">' in team.login("admin").get("/apps/demo").text
    assert "<datalist" not in team.login("manage").get("/apps/demo").text


USER_POSTS = [
    ("/users", {"name": "eve", "password": PASSWORD}),
    ("/users/keys", {"name": "view", "public_key": "ssh-ed25519 AAAA"}),
    ("/users/password", {"name": "admin", "password": "taken over password"}),
    ("/users/admin", {"name": "view", "admin": "1"}),
    ("/users/remove", {"name": "admin"}),
]


def test_the_users_page_is_for_admins_only(team: Site) -> None:
    for role in ("view", "manage", "owner"):
        client = team.login(role)
        assert 'href="/users"' not in client.get("/").text
        assert client.get("/users").status_code == 403
        token = csrf_token(client, "/")
        for path, form in USER_POSTS:
            resp = client.post(path, data={**form, "csrf_token": token})
            assert resp.status_code == 403, (role, path, resp.status_code)
    assert [u.name for u in team.ctx.store.list_users() if u.is_admin] == ["admin", "alice"]
    assert team.ctx.store.get_user("eve") is None
    assert users.login(team.ctx, "admin", PASSWORD, "::1")  # the password is unchanged
    assert 'href="/users"' in team.login("admin").get("/").text


def users_form(client: FlaskClient, path: str, data: dict) -> str:
    resp = post_form(client, path, data, page="/users", follow_redirects=True)
    assert resp.status_code == 200, resp.text
    found = re.search(r'<div class="flash flash-(\w+)"[^>]*>\s*<p>(.*?)</p>', resp.text, re.S)
    assert found, resp.text
    return f"{found.group(1)}: {found.group(2)}"


def test_an_admin_adds_a_user_a_key_a_password_and_admin_rights(team: Site, tmp_path: Path) -> None:
    ctx = team.ctx
    admin = team.login("admin")
    page = admin.get("/users").text
    assert re.search(r'data-user="alice">.*?admin.*?class="keys">0<.*?class="tokens">1<', page, re.S)
    # A user without a password: they cannot log in to the dashboard, only use keys.
    assert users_form(admin, "/users", {"name": "dana"}) == "ok: Added dana"
    assert ctx.store.get_user("dana").password_hash == ""
    assert (
        team.client().post("/login", data={"username": "dana", "password": ""}).status_code == 400
    )  # no CSRF
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    pub = (tmp_path / "k.pub").read_text()
    said = users_form(admin, "/users/keys", {"name": "dana", "public_key": pub.replace("\n", "\r\n")})
    assert said.startswith("ok: Added key dana for dana (SHA256:")
    [key] = [k for k in ctx.store.list_keys() if k.user_id == ctx.store.get_user("dana").id]
    assert ctx.store.user_of_key(key.fingerprint).name == "dana"
    assert users_form(admin, "/users/keys", {"name": "dana", "public_key": pub}).startswith(
        "error: this key is already registered"
    )
    assert users_form(admin, "/users/keys", {"name": "dana", "public_key": "ssh-ed25519 AAAA"}) == (
        "error: not a valid &#39;ssh-ed25519&#39; public key"
    )
    assert re.search(r'data-user="dana">.*?class="keys">1<', admin.get("/users").text, re.S)
    # A password, then a reset: the old one and the user's sessions stop working.
    assert users_form(admin, "/users/password", {"name": "dana", "password": "short"}) == (
        "error: a password needs 8 to 1024 characters"
    )
    assert users_form(admin, "/users/password", {"name": "dana", "password": PASSWORD}).startswith(
        "ok: Set a new"
    )
    dana = team.login("dana")
    assert dana.get("/").status_code == 200
    assert users_form(admin, "/users/password", {"name": "dana", "password": "another long one"}).startswith(
        "ok:"
    )
    assert dana.get("/").status_code == 302
    # Admin rights, at once; the last admin stays one.
    assert users_form(admin, "/users/admin", {"name": "dana", "admin": "1"}) == "ok: dana is now an admin"
    assert ctx.store.user_of_key(key.fingerprint).is_admin
    assert (
        users_form(admin, "/users/admin", {"name": "dana", "admin": "0"}) == "ok: dana is no longer an admin"
    )
    assert (
        users_form(admin, "/users/admin", {"name": "alice", "admin": "0"})
        == "ok: alice is no longer an admin"
    )
    assert users_form(admin, "/users/admin", {"name": "admin", "admin": "0"}) == (
        "error: admin is the only admin: make someone else an admin first"
    )
    assert users_form(admin, "/users/remove", {"name": "admin"}).startswith("error: admin is the only admin")
    # Added with a password and as an admin in one go; then removed with their key.
    assert (
        users_form(admin, "/users", {"name": "erin", "password": PASSWORD, "admin": "1"})
        == "ok: Added erin (admin)"
    )
    assert team.login("erin").get("/users").status_code == 200
    assert (
        users_form(admin, "/users", {"name": "erin"}) == "error: a user named &#39;erin&#39; already exists"
    )
    assert users_form(admin, "/users", {"name": "Not A Name"}).startswith("error: invalid")
    assert (
        users_form(admin, "/users/remove", {"name": "dana"})
        == "ok: Removed dana with their keys, sessions and tokens"
    )
    assert ctx.store.get_user("dana") is None and ctx.store.user_of_key(key.fingerprint) is None
    assert ctx.store.get_key(key.name) is None
    events = [(e["user"], e["action"]) for e in ctx.store.list_events(100)]
    assert ("admin", "users:add") in events and ("admin", "users:admin") in events
    assert ("admin", "ssh-keys:add") in events and ("admin", "users:remove") in events


def test_every_form_of_the_teams_pages_needs_its_csrf_token(team: Site) -> None:
    before = state(team), [u.name for u in team.ctx.store.list_users()]
    client = team.login("admin")
    for path, form in USER_POSTS + [(p, f) for p, f, _ in FORGED]:
        resp = client.post(path, data=form)
        assert resp.status_code == 400 and "CSRF" in resp.text, path
        resp = client.post(path, data={**form, "csrf_token": "forged"})
        assert resp.status_code == 400, path
    assert (state(team), [u.name for u in team.ctx.store.list_users()]) == before


def test_what_the_teams_pages_echo_is_escaped(team: Site) -> None:
    """A name is validated before it is used, and its refusal, which repeats it, is escaped."""
    evil = "<script>alert(1)</script>"
    said = access_form(team.login("owner"), "/apps/demo/access", {"user": evil})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in said and evil not in said
    said = users_form(team.login("admin"), "/users", {"name": evil})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in said and evil not in said
    team.ctx.store.add_event("demo", "owner", "config", "<img src=x onerror=alert(1)>")
    page = team.login("admin").get("/apps/demo").text
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_a_manager_who_removes_themselves_lands_on_the_app_list(team: Site) -> None:
    manager = team.login("manage")
    resp = post_form(manager, "/apps/demo/access/remove", {"user": "manage"}, page="/apps/demo")
    assert resp.status_code == 303 and resp.headers["Location"] == "/"
    page = manager.get("/").text
    assert "manage has no access to demo any more" in page and 'data-app="demo"' not in page
