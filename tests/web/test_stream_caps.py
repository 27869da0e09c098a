"""Live streams (issue 27): capped per user and per address, and ended within seconds when the
session or token they were opened with no longer holds (logout, new password, revoked token,
demotion). The log follow is faked (no docker here); tests/e2e/test_quotas.py drives the real
stream server through nginx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import docker
import pytest
from flask.testing import FlaskClient

from paas.services import access, throttle, users
from paas.web import streams
from tests.web.conftest import PASSWORD, Site, bearer, post_form


@pytest.fixture
def watched(site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    """bob owns `bobapp`; following its logs emits nothing until the stream stops it."""
    bob = site.ctx.store.get_user("bob")
    assert bob is not None
    site.ctx.store.create_app("bobapp", owner_id=bob.id)

    def follow(ctx, app, emit, stopped, lines, ptype):  # type: ignore[no-untyped-def]
        while not stopped():
            time.sleep(0.02)

    monkeypatch.setattr(streams.logs_service, "follow", follow)
    monkeypatch.setattr(throttle, "STREAM_CHECK_SECONDS", 0.1)
    return site


def _open(client: FlaskClient, path: str, headers: dict | None = None):  # type: ignore[no-untyped-def]
    return client.get(path, headers=headers or {}, buffered=False)


def _until_failure(resp, timeout: float = 5) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """Read the stream until its failure event (or its end); the text and how long it took."""
    started = time.monotonic()
    chunks: Iterator[bytes] = iter(resp.response)
    text = ""
    for chunk in chunks:
        text += chunk.decode() if isinstance(chunk, bytes) else chunk
        if "event: failure" in text or time.monotonic() - started > timeout:
            break
    return text, time.monotonic() - started


def test_one_user_holds_only_their_share_and_others_still_open(watched: Site) -> None:
    site = watched
    site.ctx.shared("stream-slots", lambda: throttle.StreamSlots(per_user=3, per_address=5))
    bob = site.client()
    held = [_open(bob, "/api/v1/apps/bobapp/log-stream", bearer(site.user_token)) for _ in range(3)]
    assert [r.status_code for r in held] == [200, 200, 200]
    refused = _open(bob, "/api/v1/apps/bobapp/log-stream", bearer(site.user_token))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    assert refused.get_json() == {
        "id": "rate_limited",
        "message": "too many live streams open for bob (the limit is 3); close some",
    }
    alice = site.login()  # another user, same address: her stream still opens
    theirs = [_open(alice, "/apps/demo/logs/stream") for _ in range(2)]
    assert [r.status_code for r in theirs] == [200, 200]
    full = _open(alice, "/apps/demo/logs/stream")
    assert (
        full.status_code == 429 and "too many live streams open from 127.0.0.1 (the limit is 5)" in full.text
    )
    held[0].close()  # a closed stream gives its slot back
    again = _open(bob, "/api/v1/apps/bobapp/log-stream", bearer(site.user_token))
    assert again.status_code == 200
    for r in [*held[1:], *theirs, again]:
        r.close()
    slots = site.ctx.shared("stream-slots", throttle.StreamSlots)
    assert slots.held("bob") == 0 and slots.held("alice") == 0


def _logout(site: Site, client: FlaskClient) -> None:
    assert post_form(client, "/logout", {}).status_code == 303


def _new_password(site: Site, client: FlaskClient) -> None:
    users.set_password(site.ctx, "bob", "another horse battery")


def _demote(site: Site, client: FlaskClient) -> None:
    users.set_admin(site.ctx, "bob", False)


@pytest.mark.parametrize("end", [_logout, _new_password, _demote], ids=["logout", "password", "demoted"])
def test_a_dashboard_stream_ends_within_seconds_when_its_session_no_longer_holds(watched: Site, end) -> None:  # type: ignore[no-untyped-def]
    site = watched
    if end is _demote:
        users.set_admin(site.ctx, "bob", True)
    client = site.login("bob", PASSWORD)
    resp = _open(client, "/apps/bobapp/logs/stream")
    assert resp.status_code == 200
    first = next(iter(resp.response))
    assert b"retry: 2000" in first
    end(site, client)
    text, took = _until_failure(resp)
    assert "event: failure\ndata: session ended: logged out, new password" in text and took < 3
    resp.close()


def test_an_api_stream_ends_when_its_token_is_revoked(watched: Site) -> None:
    site = watched
    resp = _open(site.client(), "/api/v1/apps/bobapp/log-stream", bearer(site.user_token))
    assert resp.status_code == 200
    token_id = next(t.id for t in site.ctx.store.list_tokens() if t.user == "bob")
    users.revoke_token(site.ctx, token_id)
    text, took = _until_failure(resp)
    assert "session ended" in text and took < 3
    resp.close()


def test_still_signed_in_follows_the_store(site: Site) -> None:
    bob = access.user_named(site.ctx, "bob")
    assert users.still_signed_in(site.ctx, "token", site.user_token, bob)
    assert not users.still_signed_in(site.ctx, "token", site.admin_token, bob)  # another user's
    assert not users.still_signed_in(site.ctx, "session", "no-such-session", bob)


def test_an_engine_error_ends_the_stream_with_a_failure_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a dead thread and a stream that only ever sends keep-alives."""

    def follow(*args: object, **kwargs: object) -> None:
        raise docker.errors.APIError("500 Server Error: the engine is restarting")

    monkeypatch.setattr(streams.logs_service, "follow", follow)
    monkeypatch.setattr(throttle, "STREAM_CHECK_SECONDS", 0.1)
    events = list(streams.log_events(None, "shop", None, 10, None))  # type: ignore[arg-type]
    assert events[-1] == f"event: failure\ndata: {streams.STREAM_FAILED}\n\n", events
