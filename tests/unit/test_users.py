"""Accounts: argon2 hashes, tokens stored as hashes only, sessions, the users:/tokens: commands."""

from __future__ import annotations

import io
import sqlite3
import subprocess
from pathlib import Path

import pytest

from paas import commands
from paas.core.context import Context
from paas.errors import Conflict, NotFound, PaasError, PermissionDenied, Unauthenticated
from paas.services import keys, users
from paas.settings import Settings


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)


def run(ctx: Context, *argv: str, stdin: bytes = b"", on_host: bool = True) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, stdin=io.BytesIO(stdin), on_host=on_host)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


def test_passwords_are_argon2id_hashes_and_checked(ctx: Context) -> None:
    user = users.add_user(ctx, "alice", "a long password", admin=True)
    assert user.password_hash.startswith("$argon2id$")
    assert "a long password" not in user.password_hash
    assert users.login(ctx, "alice", "a long password", "127.0.0.1").name == "alice"
    with pytest.raises(Unauthenticated, match="invalid user name or password"):
        users.login(ctx, "alice", "A long password", "127.0.0.1")
    with pytest.raises(Unauthenticated, match="invalid user name or password"):  # same words for nobody
        users.login(ctx, "mallory", "a long password", "127.0.0.1")
    with pytest.raises(Conflict):
        users.add_user(ctx, "alice", "another password")
    with pytest.raises(PaasError, match="8 to 1024"):
        users.add_user(ctx, "bob", "short")
    with pytest.raises(PaasError, match="invalid user name"):
        users.add_user(ctx, "bob smith", "long enough")


def test_a_good_login_forgets_earlier_failures(ctx: Context) -> None:
    users.add_user(ctx, "alice", "a long password")
    for _ in range(users.MAX_FAILURES - 1):
        with pytest.raises(Unauthenticated):
            users.login(ctx, "alice", "wrong", "10.0.0.1")
    users.login(ctx, "alice", "a long password", "10.0.0.1")
    for _ in range(users.MAX_FAILURES - 1):
        with pytest.raises(Unauthenticated):
            users.login(ctx, "alice", "wrong", "10.0.0.1")
    assert users.login(ctx, "alice", "a long password", "10.0.0.1").name == "alice"


def test_tokens_are_shown_once_and_stored_only_as_hashes(ctx: Context) -> None:
    users.add_user(ctx, "alice", "a long password")
    token_id, token = users.create_token(ctx, "alice", "ci")
    assert token.startswith("paas_") and len(token) > 40
    assert users.token_user(ctx, token).name == "alice"
    assert users.token_user(ctx, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert users.token_user(ctx, "Bearer nonsense") is None
    db = sqlite3.connect(ctx.settings.db_path)
    dump = "\n".join(db.iterdump())
    assert token not in dump and token[5:] not in dump
    [listed] = users.list_tokens(ctx)
    assert (listed.id, listed.user, listed.description) == (token_id, "alice", "ci")
    assert listed.last_used_at is not None
    users.revoke_token(ctx, token_id)
    assert users.token_user(ctx, token) is None
    with pytest.raises(PaasError, match="no token"):
        users.revoke_token(ctx, token_id)


def test_sessions_end_on_logout_password_change_and_expiry(ctx: Context) -> None:
    alice = users.add_user(ctx, "alice", "a long password")
    sid = users.start_session(ctx, alice, at=1000.0)
    assert users.session_user(ctx, sid, at=1001.0) == alice
    assert users.session_user(ctx, sid + "x", at=1001.0) is None
    assert users.session_user(ctx, sid, at=1000.0 + users.SESSION_IDLE + 5) is None  # idle too long
    sid = users.start_session(ctx, alice)
    users.set_password(ctx, "alice", "another long one")
    assert users.session_user(ctx, sid) is None
    sid = users.start_session(ctx, alice)
    users.end_session(ctx, sid)
    assert users.session_user(ctx, sid) is None
    sid = users.start_session(ctx, alice)
    users.remove_user(ctx, "alice")
    assert users.session_user(ctx, sid) is None


def test_only_admins_manage_accounts(ctx: Context) -> None:
    users.add_user(ctx, "alice", "a long password")
    bob = ctx.for_actor("bob", is_admin=False)
    for call in (
        lambda: users.list_users(bob),
        lambda: users.add_user(bob, "eve", "a long password"),
        lambda: users.create_token(bob, "alice"),
        lambda: users.remove_user(bob, "alice"),
    ):
        with pytest.raises(PermissionDenied, match="only an admin"):
            call()


def test_users_and_tokens_commands(ctx: Context) -> None:
    code, out, err = run(ctx, "users:add", "alice", "--admin", stdin=b"a long password\n")
    assert (code, out) == (0, "-----> Added user alice (admin)\n"), err
    assert users.login(ctx, "alice", "a long password", "::1").is_admin
    code, out, _ = run(ctx, "users:list", "--format", "json")
    assert '"name": "alice"' in out and '"admin": true' in out
    code, out, err = run(ctx, "tokens:create", "alice", "--description", "deploy bot")
    assert code == 0 and "shown once" in err
    token = out.strip()
    assert users.token_user(ctx, token).name == "alice"
    code, out, _ = run(ctx, "tokens:list")
    assert "alice" in out and "deploy bot" in out and token not in out
    assert run(ctx, "tokens:revoke", "1")[0] == 0
    assert users.token_user(ctx, token) is None
    code, _, err = run(ctx, "users:add", "bob", stdin=b"short\n")
    assert (code, err) == (1, "error: a password needs 8 to 1024 characters\n")
    code, _, err = run(ctx, "users:passwd", "alice", stdin=b"a new long password\n")
    assert code == 0 and users.login(ctx, "alice", "a new long password", "::1")
    # Over SSH: handing out access is host-only, and listing users takes an admin.
    for name in (
        "users:add",
        "users:remove",
        "users:passwd",
        "tokens:create",
        "tokens:list",
        "tokens:revoke",
    ):
        assert name not in commands.available(on_host=False)
    code, _, err = run(ctx.for_actor("bob", False), "users:list", on_host=False)
    assert (code, err) == (1, "error: only an admin may run users:list\n")


def test_a_user_without_a_password_cannot_log_in(ctx: Context) -> None:
    dana = users.add_user(ctx, "dana", None)
    assert dana.password_hash == ""
    for attempt in ("", "anything at all"):
        with pytest.raises(Unauthenticated):
            users.login(ctx, "dana", attempt, "::1")
    with pytest.raises(PaasError, match="a password needs"):
        users.add_user(ctx, "erin", "short")


def test_admin_rights_are_given_and_taken_and_the_last_admin_stays(ctx: Context) -> None:
    users.add_user(ctx, "alice", "a long password", admin=True)
    users.add_user(ctx, "bob", "a long password")
    bob = ctx.for_actor("bob", is_admin=False)
    with pytest.raises(PermissionDenied, match="only an admin"):
        users.set_admin(bob, "bob", True)
    with pytest.raises(PermissionDenied, match="only an admin"):
        users.list_accounts(bob)
    assert users.set_admin(ctx, "bob", True).is_admin
    with pytest.raises(PaasError, match="bob is already an admin"):
        users.set_admin(ctx, "bob", True)
    assert not users.set_admin(ctx, "alice", False).is_admin
    with pytest.raises(PaasError, match="^bob is the only admin: make someone else an admin first$"):
        users.set_admin(ctx, "bob", False)
    with pytest.raises(PaasError, match="^bob is the only admin"):
        users.remove_user(ctx, "bob")
    with pytest.raises(NotFound):
        users.set_admin(ctx, "nosuch", True)
    actions = [(e["action"], e["detail"]) for e in ctx.store.list_events(10)]
    assert ("users:admin", "bob on") in actions and ("users:admin", "alice off") in actions
    users.remove_user(ctx, "alice")  # no admin any more: nobody is locked out by this


def test_accounts_count_keys_and_tokens(ctx: Context, tmp_path: Path) -> None:
    users.add_user(ctx, "alice", "a long password", admin=True)
    users.add_user(ctx, "bob", None)
    users.create_token(ctx, "alice")
    users.create_token(ctx, "alice")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    keys.add_key(ctx, "bob", (tmp_path / "k.pub").read_text())
    rows = {a.name: a for a in users.list_accounts(ctx)}
    assert (rows["alice"].is_admin, rows["alice"].has_password, rows["alice"].keys, rows["alice"].tokens) == (
        True,
        True,
        0,
        2,
    )
    assert (rows["bob"].is_admin, rows["bob"].has_password, rows["bob"].keys, rows["bob"].tokens) == (
        False,
        False,
        1,
        0,
    )


def test_an_admin_off_the_host_may_add_and_remove_keys_and_nobody_else(ctx: Context, tmp_path: Path) -> None:
    users.add_user(ctx, "alice", "a long password", admin=True)
    users.add_user(ctx, "bob", "a long password")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    pub = (tmp_path / "k.pub").read_text()
    bob = ctx.for_actor("bob", is_admin=False)
    with pytest.raises(PermissionDenied):
        keys.add_key(bob, "bob", pub)
    alice = ctx.for_actor("alice", is_admin=True)  # on the dashboard: an admin, not on the host
    key = keys.add_key(alice, "bob", pub)
    assert ctx.store.user_of_key(key.fingerprint).name == "bob"  # type: ignore[union-attr]
    with pytest.raises(PermissionDenied):
        keys.remove_key(bob, key.name)
    keys.remove_key(alice, key.name)
    assert ctx.store.user_of_key(key.fingerprint) is None
