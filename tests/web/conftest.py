"""Fixtures for the dashboard and API through Flask's test client: a real store in a temp dir,
real argon2, real nginx -t for routes; no server process."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from paas.core.context import Context
from paas.services import users
from paas.settings import Settings
from paas.web import create_app

PASSWORD = "correct horse battery"


@dataclass
class Site:
    ctx: Context  # acting as the host (admin)
    app: Flask
    admin_token: str
    user_token: str

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def login(self, name: str = "alice", password: str = PASSWORD) -> FlaskClient:
        client = self.client()
        resp = post_form(client, "/login", {"username": name, "password": password})
        assert resp.status_code == 303, resp.text
        return client


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post_form(client: FlaskClient, path: str, data: dict, page: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
    """POST a form the way a browser does: with the CSRF token of the page it came from."""
    token = csrf_token(client, page or ("/login" if path == "/login" else "/"))
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


JOB_STATE = re.compile(r'id="job" data-state="(\w+)"')


def finish_job(client: FlaskClient, resp, timeout: float = 30):  # type: ignore[no-untyped-def]
    """A deploy form's answer is the job's page (303 at once); wait until the job has ended and
    return its page."""
    assert resp.status_code == 303, resp.text
    location = resp.headers["Location"]
    assert "/jobs/" in location, location
    deadline = time.monotonic() + timeout
    while True:
        page = client.get(location)
        state = JOB_STATE.search(page.text)
        assert state, page.text
        if state.group(1) in ("succeeded", "failed", "interrupted"):
            return page
        assert time.monotonic() < deadline, page.text
        time.sleep(0.02)


def post_deploy(client: FlaskClient, path: str, data: dict, page: str | None = None):  # type: ignore[no-untyped-def]
    """POST a form that deploys and wait for its job: the ended job's page."""
    return finish_job(client, post_form(client, path, data, page=page))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    settings = Settings(data_dir=tmp_path / "data", http_port=18080, http_bind="127.0.0.1")
    ctx = Context.open(settings, actor="host", is_admin=True, on_host=True)
    users.add_user(ctx, "alice", PASSWORD, admin=True)
    users.add_user(ctx, "bob", PASSWORD)
    ctx.store.create_app("demo")
    _, admin_token = users.create_token(ctx, "alice")
    _, user_token = users.create_token(ctx, "bob")
    return Site(ctx, create_app(ctx=ctx), admin_token, user_token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
