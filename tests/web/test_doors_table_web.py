"""Every dashboard and API route answers every role as the one permission table says (issue 26):
each route (the plugins' blueprints, live streams, downloads and deploy jobs included) is in
`access.ROUTES`, and each is driven as anonymous, none, view, deploy, operate, manage, owner and
admin through Flask's test client. A refused role gets the table's status and words (404 for what
it may not see, 403 for what it may see but not do; anonymous: the login page, or 401 for the
API), before anything changed; an allowed role is never refused.

The world is the one of tests/unit/test_doors_table.py (its docker engine fails on first use);
each case runs on its own copy, with each role signed in by a session (pages) or a token (API).
CSRF is off here: every form's token is tested in test_teams_web.py and test_security.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from paas.services import access, jobs, users
from paas.web import create_app
from tests.unit.test_doors_table import (
    APP,
    FOLDER,
    JOB_OPERATION,
    ROLES,
    SERVICE,
    SIGN_IN_TABLES,
    Case,
    World,
    _as,
    _case,
    _state,
)
from tests.unit.test_doors_table import world as world  # noqa: F401 - the fixture

ASYNC = {"Prefer": "respond-async"}  # API deploys answer with a job (its work does not matter here)

# endpoint -> (method, path, form or JSON body, headers); {job} and {backup} are the world's.
ROUTE_CALLS: dict[str, tuple[str, str, dict | None, dict]] = {
    "static": ("GET", "/static/app.css", None, {}),
    "auth.login": ("GET", "/login", None, {}),
    "auth.logout": ("POST", "/logout", {}, {}),
    "pages.apps": ("GET", "/", None, {}),
    "pages.create_app": ("POST", "/apps", {"name": "fresh"}, {}),
    "pages.destroy": ("POST", f"/apps/{APP}/destroy", {"confirm": "not-the-name"}, {}),
    "pages.app": ("GET", f"/apps/{APP}", None, {}),
    "pages.scale": ("POST", f"/apps/{APP}/scale", {"type": "web", "quantity": "2"}, {}),
    "pages.restart": ("POST", f"/apps/{APP}/restart", {}, {}),
    "pages.stop": ("POST", f"/apps/{APP}/stop", {}, {}),
    "pages.start": ("POST", f"/apps/{APP}/start", {}, {}),
    "pages.config_set": ("POST", f"/apps/{APP}/config", {"key": "K", "value": "v"}, {}),
    "pages.config_unset": ("POST", f"/apps/{APP}/config/unset", {"key": "SECRET"}, {}),
    "pages.domain_add": ("POST", f"/apps/{APP}/domains", {"hostname": "new.example.com"}, {}),
    "pages.domain_remove": ("POST", f"/apps/{APP}/domains/remove", {"hostname": "www.shop.example"}, {}),
    "pages.rollback": ("POST", f"/apps/{APP}/rollback", {"version": "v1"}, {}),
    "pages.job": ("GET", f"/apps/{APP}/jobs/{{job}}", None, {}),
    "pages.job_done": ("GET", f"/apps/{APP}/jobs/{{job}}/done", None, {}),
    "pages.job_stream": ("GET", f"/apps/{APP}/jobs/{{job}}/stream", None, {}),
    "pages.build_output": ("GET", f"/apps/{APP}/releases/1/build", None, {}),
    "pages.logs": ("GET", f"/apps/{APP}/logs", None, {}),
    "pages.log_stream": ("GET", f"/apps/{APP}/logs/stream", None, {}),
    "pages.metrics": ("GET", f"/apps/{APP}/metrics", None, {}),
    "pages.access_add": ("POST", f"/apps/{APP}/access", {"user": "none", "permissions": "view"}, {}),
    "pages.access_update": (
        "POST",
        f"/apps/{APP}/access/update",
        {"user": "view", "permissions": "deploy"},
        {},
    ),
    "pages.access_remove": ("POST", f"/apps/{APP}/access/remove", {"user": "view"}, {}),
    "pages.transfer": ("POST", f"/apps/{APP}/transfer", {"user": "view"}, {}),
    "accounts.users": ("GET", "/users", None, {}),
    "accounts.add": ("POST", "/users", {"name": "eve"}, {}),
    "accounts.add_key": ("POST", "/users/keys", {"name": "view", "public_key": "ssh-ed25519 AAAA"}, {}),
    "accounts.password": ("POST", "/users/password", {"name": "view", "password": "a long password"}, {}),
    "accounts.admin": ("POST", "/users/admin", {"name": "view", "admin": "1"}, {}),
    "accounts.remove": ("POST", "/users/remove", {"name": "view"}, {}),
    "services.index": ("GET", "/services", None, {}),
    "services.service": ("GET", "/services/postgres/shopdb", None, {}),
    "services.download": ("GET", "/services/postgres/shopdb/backups/{backup}", None, {}),
    "review_apps.destroy": ("POST", f"/apps/{APP}/review-apps/destroy", {}, {}),
    "api.openapi": ("GET", "/api/v1/openapi.json", None, {}),
    "api.account": ("GET", "/api/v1/account", None, {}),
    "api.account_quotas": ("GET", "/api/v1/account/quotas", None, {}),
    "api.users": ("GET", "/api/v1/users", None, {}),
    "api.apps": ("GET", "/api/v1/apps", None, {}),
    "api.create_app": ("POST", "/api/v1/apps", {"name": "fresh"}, {}),
    "api.app_info": ("GET", f"/api/v1/apps/{APP}", None, {}),
    "api.destroy": ("DELETE", f"/api/v1/apps/{APP}", None, {}),
    "api.config": ("GET", f"/api/v1/apps/{APP}/config", None, {}),
    "api.config_patch": ("PATCH", f"/api/v1/apps/{APP}/config", {"K": "v"}, ASYNC),
    "api.formation": ("GET", f"/api/v1/apps/{APP}/formation", None, {}),
    "api.formation_batch": (
        "PATCH",
        f"/api/v1/apps/{APP}/formation",
        {"updates": [{"type": "web", "quantity": 2}]},
        ASYNC,
    ),
    "api.formation_one": ("PATCH", f"/api/v1/apps/{APP}/formation/web", {"quantity": 2}, ASYNC),
    "api.dynos": ("GET", f"/api/v1/apps/{APP}/dynos", None, {}),
    "api.restart": ("DELETE", f"/api/v1/apps/{APP}/dynos", None, ASYNC),
    "api.releases": ("GET", f"/api/v1/apps/{APP}/releases", None, {}),
    "api.rollback": ("POST", f"/api/v1/apps/{APP}/releases", {"release": "v1"}, ASYNC),
    "api.release": ("GET", f"/api/v1/apps/{APP}/releases/v1", None, {}),
    "api.build_output": ("GET", f"/api/v1/apps/{APP}/releases/v1/build-output", None, {}),
    "api.job": ("GET", f"/api/v1/apps/{APP}/jobs/{{job}}", None, {}),
    "api.job_stream": ("GET", f"/api/v1/apps/{APP}/jobs/{{job}}/stream", None, {}),
    "api.domains": ("GET", f"/api/v1/apps/{APP}/domains", None, {}),
    "api.domain_add": ("POST", f"/api/v1/apps/{APP}/domains", {"hostname": "new.example.com"}, {}),
    "api.domain_remove": ("DELETE", f"/api/v1/apps/{APP}/domains/www.shop.example", None, {}),
    "api.logs": ("GET", f"/api/v1/apps/{APP}/logs", None, {}),
    "api.log_stream": ("GET", f"/api/v1/apps/{APP}/log-stream", None, {}),
    "api.metrics": ("GET", f"/api/v1/apps/{APP}/metrics", None, {}),
    "metrics.static": ("GET", "/metrics-static/metrics.css", None, {}),
    "metrics.history": ("GET", f"/api/v1/apps/{APP}/metrics/history", None, {}),
    "metrics.exposition": ("GET", "/api/v1/metrics", None, {}),
}
# What the table's rule names besides the app, for the routes of OWNED operations.
OWNED = {"services.service": SERVICE, "services.download": SERVICE}
MISSING_BACKUP = "postgres service shopdb has no backup shopdb-20260101T000000Z.dump"


def _quiet(timeout: float = 30) -> None:
    """Until the jobs and live-log threads a request started have ended: CPython 3.11 may fail
    an `ast.parse` in one thread (werkzeug compiling the next site's routes) while another formats
    a traceback ("AST constructor recursion depth mismatch"), and those threads log theirs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
        jobs._pending or any(t.name.startswith("logs-") for t in threading.enumerate())
    ):
        time.sleep(0.02)


def _site(case: Case) -> Flask:
    app = create_app(ctx=case.host)
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def _client(app: Flask, case: Case, role: str) -> tuple[FlaskClient, dict]:
    """A client signed in as the role: a session cookie for pages, a token for the API."""
    client = app.test_client()
    if role == "anonymous":
        return client, {}
    user = case.host.store.get_user(role)
    sid = users.start_session(case.host, user)
    cookie = app.session_interface.get_signing_serializer(app).dumps({"sid": sid})  # type: ignore[attr-defined]
    client.set_cookie("paas_session", cookie)
    _, token = users.create_token(case.host, role)
    return client, {"Authorization": f"Bearer {token}"}


def _is_api(endpoint: str) -> bool:
    """A route under /api/ (a plugin's blueprint may serve one): tokens, JSON, 401."""
    return ROUTE_CALLS[endpoint][1].startswith("/api/")


def route_refusal(role: str, endpoint: str) -> tuple[int, str | None] | None:
    """(status, words) the table gives this role on the route (None: allowed)."""
    rule = access.ROUTES[endpoint]
    api = _is_api(endpoint)
    if rule == access.PUBLIC:
        return None
    if role == "anonymous":
        return (401, None) if api else (302 if ROUTE_CALLS[endpoint][0] == "GET" else 303, None)
    if rule in (access.SIGNED_IN, *access.APP_LESS):
        return None
    operation = JOB_OPERATION if rule == access.JOB else rule
    if operation in access.ADMIN_ONLY:
        return None if role == "admin" else (403, f"only an admin may run {operation}")
    if operation in access.OPERATIONS:
        needed = access.OPERATIONS[operation]
        if role == "none":
            return 404, f"app '{APP}' does not exist"
        if role not in ("owner", "admin") and needed not in ("view", role):
            return 403, f"you need the '{needed}' permission on '{APP}'"
    if endpoint in OWNED and role not in ("owner", "admin"):
        return 404, MISSING_BACKUP if endpoint == "services.download" else f"{OWNED[endpoint]} does not exist"
    return None


def test_every_route_is_in_the_table(tmp_path: Path, world: World) -> None:
    app = _site(_case(world, tmp_path, "admin"))
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(endpoints - set(access.ROUTES)) == [], (
        "give each new route its operation (access.ROUTES; a plugin: declare_routes)"
    )
    assert sorted(set(access.ROUTES) - endpoints) == [], "access.ROUTES names routes that are gone"
    markers = {access.PUBLIC, access.SIGNED_IN, access.JOB}
    assert [e for e, op in access.ROUTES.items() if op not in markers and not access.known(op)] == []
    assert sorted(set(ROUTE_CALLS) ^ endpoints) == [], "give each new route its ROUTE_CALLS"


def _request(client: FlaskClient, endpoint: str, world: World, auth: dict):  # type: ignore[no-untyped-def]
    method, path, body, headers = ROUTE_CALLS[endpoint]
    path = path.format(job=world.job, backup=world.backup)
    kwargs: dict = {"headers": {**headers, **(auth if _is_api(endpoint) else {})}}
    if body is not None:
        kwargs["json" if _is_api(endpoint) else "data"] = body
    return client.open(path, method=method, **kwargs)


@pytest.mark.parametrize("endpoint", sorted(ROUTE_CALLS))
def test_each_route_answers_every_role_as_the_table_says(
    world: World,
    tmp_path: Path,
    endpoint: str,
) -> None:
    wrong = []
    shared = _case(world, tmp_path / "refused", "admin")
    shared_site = _site(shared)
    for role in ROLES:
        expected = route_refusal(role, endpoint)
        case = shared if expected is not None else _case(world, tmp_path / role, role)
        site = shared_site if expected is not None else _site(case)
        client, auth = _client(site, case, role)
        before = _state(case, SIGN_IN_TABLES)
        resp = _request(client, endpoint, world, auth)
        live = resp.mimetype == "text/event-stream"  # a live stream: its status is the answer
        status, text = resp.status_code, "" if live else resp.get_data(as_text=True)
        resp.close()
        _quiet()
        if expected is not None:
            want, words = expected
            if status != want:
                wrong.append(f"{endpoint} as {role}: wanted {want}, got {status}")
            elif want in (302, 303) and "/login" not in resp.headers.get("Location", ""):
                wrong.append(f"{endpoint} as {role}: sent to {resp.headers.get('Location')}, not the login")
            elif words is not None and (str(escape(words)) not in text and words not in text):
                wrong.append(f"{endpoint} as {role}: {status} without {words!r}")
            elif case.engine.used or _state(case, SIGN_IN_TABLES) != before:
                wrong.append(f"{endpoint} as {role}: refused only after changing something or using docker")
        elif status in (401, 403) or (status == 404 and any(m in text for m in _missing_words())):
            wrong.append(f"{endpoint} as {role}: refused ({status})")
        elif (
            status in (302, 303)
            and "/login" in resp.headers.get("Location", "")
            and endpoint != "auth.logout"
        ):
            wrong.append(f"{endpoint} as {role}: sent to the login")
    assert wrong == [], "\n".join(wrong)


def _missing_words() -> list[str]:
    return [
        str(escape(w))
        for w in (
            f"app '{APP}' does not exist",
            f"{SERVICE} does not exist",
            f"{FOLDER} does not exist",
            MISSING_BACKUP,
        )
    ] + [f"app '{APP}' does not exist", f"{SERVICE} does not exist", MISSING_BACKUP]


def test_the_roles_are_the_table_s(world: World, tmp_path: Path) -> None:  # noqa: F811
    """The users of the world are the table's roles (so `_as` plays each one)."""
    case = _case(world, tmp_path, "admin")
    for role in ROLES[1:]:
        assert _as(case.host, role).actor == role
