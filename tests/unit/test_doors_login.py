"""Door 3 and 4: spraying, the hash cap, login names that are never stored, events escaped."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from paas import commands
from paas.core.context import Context
from paas.errors import Throttled, Unauthenticated
from paas.services import users
from paas.settings import Settings


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    users.add_user(c, "alice", "correct horse battery", admin=True)
    return c


def test_one_password_sprayed_over_many_names_locks_the_address(ctx: Context) -> None:
    """Before: the throttle was per (name, address), so every new name got five more tries."""
    ip = "203.0.113.7"
    for i in range(users.MAX_ADDRESS_FAILURES):
        with pytest.raises(Unauthenticated):
            users.login(ctx, f"user{i}", "Summer2026!", ip, at=1000.0 + i)
    with pytest.raises(Throttled):
        users.login(ctx, "someone-else", "Summer2026!", ip, at=1100.0)
    with pytest.raises(Throttled):  # the right password too, from that address
        users.login(ctx, "alice", "correct horse battery", ip, at=1100.0)
    assert users.login(ctx, "alice", "correct horse battery", "198.51.100.2", at=1100.0).name == "alice"
    later = 1000.0 + users.FAILURE_WINDOW + users.MAX_ADDRESS_FAILURES + 1
    assert users.login(ctx, "alice", "correct horse battery", ip, at=later).name == "alice"


def test_names_that_cannot_be_users_are_never_stored(ctx: Context) -> None:
    evil = "x\x1b]52;c;ZWNobyBwd25lZA==\x07"
    for _ in range(6):
        with pytest.raises((Unauthenticated, Throttled)):
            users.login(ctx, evil, "whatever", "203.0.113.8")
    rows = ctx.store._all("SELECT username FROM login_failures")
    assert {r["username"] for r in rows} == {""}
    assert all("\x1b" not in str(e) for e in ctx.store.list_events(100, None))


def test_at_most_max_hashing_password_checks_run_at_once(ctx: Context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(users, "HASH_WAIT", 0.2)
    for _ in range(users.MAX_HASHING):
        assert users._hashing.acquire(timeout=1)  # others are hashing
    try:
        with pytest.raises(Throttled):
            users.login(ctx, "alice", "correct horse battery", "203.0.113.9")
    finally:
        for _ in range(users.MAX_HASHING):
            users._hashing.release()
    assert users.login(ctx, "alice", "correct horse battery", "203.0.113.9").name == "alice"


def test_concurrent_logins_never_exceed_the_cap(ctx: Context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    running, peak, lock = [0], [0], threading.Lock()
    real = users._hasher.verify

    def counting(h: str, p: str) -> bool:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return real(h, p)
        finally:
            with lock:
                running[0] -= 1

    class Counting:
        verify = staticmethod(counting)
        hash = staticmethod(users._hasher.hash)
        check_needs_rehash = staticmethod(users._hasher.check_needs_rehash)

    monkeypatch.setattr(users, "_hasher", Counting())
    threads = [threading.Thread(target=lambda i=i: _try(ctx, f"n{i}", f"198.51.100.{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= users.MAX_HASHING


def _try(ctx: Context, name: str, ip: str) -> None:
    try:
        users.login(ctx, name, "wrong password", ip)
    except (Unauthenticated, Throttled):
        pass


def test_events_escape_control_characters(ctx: Context) -> None:
    """Before: `events` printed a stored ESC sequence raw (it can set the reader's clipboard)."""
    ctx.store.add_event(None, "x\x1b]52;c;aGk=\x07", "login:locked", "from \x1b[2J\nforged line")
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, stdin=io.BytesIO(b""), on_host=True)
    assert commands.dispatch(["events"], env) == 0
    shown = out.getvalue()
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b]52;c;aGk=\\x07" in shown
    assert not any(line.startswith("forged") for line in shown.splitlines())


def test_bad_api_tokens_lock_the_address_out_of_the_api(ctx: Context) -> None:
    """Before: bad tokens were free to try forever (only nginx's general API rate stands in front)."""
    _, good = users.create_token(ctx, "alice")
    ip = "203.0.113.10"
    for i in range(users.MAX_TOKEN_FAILURES):
        assert users.token_user(ctx, f"paas_guess{i}", ip, at=1000.0 + i) is None
    with pytest.raises(Throttled):
        users.token_user(ctx, good, ip, at=1030.0)
    assert users.token_user(ctx, good, "198.51.100.3", at=1030.0) is not None  # another address
    assert users.login(ctx, "alice", "correct horse battery", ip, at=1030.0).name == "alice"  # logins apart
    later = 1000.0 + users.FAILURE_WINDOW + users.MAX_TOKEN_FAILURES + 1
    assert users.token_user(ctx, good, ip, at=later) is not None
