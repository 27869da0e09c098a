"""Teams (issue 12): the permission table, roles, collaborators, the migration of today's stores."""

from __future__ import annotations

import io
import sqlite3
import subprocess
from pathlib import Path

import pytest

from paas import commands
from paas.core.context import Context
from paas.errors import NotFound, PaasError, PermissionDenied
from paas.git_receiver import pack_process
from paas.plugins import plugins
from paas.services import access, apps, config, events, keys, lookup
from paas.settings import Settings
from paas.store import Store, db

plugins(set())  # the built-in plugins: the datastores declare their commands' rules (postgres:link)


def host(tmp_path: Path, **settings: object) -> Context:
    return Context.open(
        Settings(data_dir=tmp_path / "data", **settings), actor="host", is_admin=True, on_host=True
    )  # type: ignore[arg-type]


def pubkey(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return (tmp_path / f"{name}.pub").read_text()


def as_user(ctx: Context, name: str) -> Context:
    """What the SSH server does for a key of this user."""
    user = ctx.store.get_user(name)
    assert user is not None
    return ctx.for_actor(user.name, user.is_admin, user_id=user.id)


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = commands.dispatch(list(argv), commands.CommandEnv(ctx=ctx, out=out, err=err, on_host=ctx.on_host))
    return code, out.getvalue(), err.getvalue()


def make_team(tmp_path: Path) -> Context:
    """admin (first key), owner (created 'shop'), and one user per grantable permission, plus a
    user with no access."""
    ctx = host(tmp_path)
    for name in ("admin", "owner", "view", "deploy", "operate", "manage", "none"):
        keys.add_key(ctx, name, pubkey(tmp_path, name))
    apps.create_app(as_user(ctx, "owner"), "shop")
    for perm in ("view", "deploy", "operate", "manage"):
        access.add_access(as_user(ctx, "owner"), "shop", perm, perm)
    return ctx


@pytest.fixture
def team(tmp_path: Path) -> Context:
    return make_team(tmp_path)


@pytest.fixture(scope="module")
def shared_team(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """For tests that only read (the matrix): made once."""
    return make_team(tmp_path_factory.mktemp("team"))


@pytest.mark.parametrize("role", access.ROLES)
@pytest.mark.parametrize("operation", sorted(access.OPERATIONS))
def test_require_follows_the_table(shared_team: Context, role: str, operation: str) -> None:
    """Every operation x every role, straight from the table: the service layer's answer."""
    needed = access.OPERATIONS[operation]
    ctx = as_user(shared_team, role)
    if role == "none":
        with pytest.raises(NotFound, match=r"^app 'shop' does not exist$"):
            access.authorize(ctx, "shop", operation)
    elif role in ("admin", "owner") or needed in (role, "view"):
        assert access.authorize(ctx, "shop", operation).name == "shop"
    else:
        with pytest.raises(PermissionDenied, match=rf"^you need the '{needed}' permission on 'shop'$"):
            access.authorize(ctx, "shop", operation)


def test_an_invisible_app_reads_as_a_missing_one(team: Context) -> None:
    stranger = as_user(team, "none")
    answers = []
    for name in ("shop", "nosuch"):
        code, out, err = run(stranger, "apps:info", name)
        answers.append((code, out, err.replace(name, "X")))
    assert answers[0] == answers[1] == (1, "", "error: app 'X' does not exist\n")


def test_lists_and_events_show_only_what_one_may_view(team: Context) -> None:
    apps.create_app(as_user(team, "admin"), "intranet")
    assert [a.name for a in lookup.list_apps(as_user(team, "view"))] == ["shop"]
    assert lookup.list_apps(as_user(team, "none")) == []
    assert [a.name for a in lookup.list_apps(as_user(team, "admin"))] == ["intranet", "shop"]
    with pytest.raises(NotFound):
        access.authorize(as_user(team, "none"), "shop", "apps:info")
    viewer_events = events.list_events(as_user(team, "view"), 100)
    assert {e["app"] for e in viewer_events} == {"shop"}
    admin_events = events.list_events(as_user(team, "admin"), 100)
    actions = {e["action"] for e in admin_events}
    assert {"access:add", "access:denied", "apps:create"} <= actions
    assert any(e["app"] == "intranet" for e in admin_events)
    assert events.list_events(as_user(team, "none"), 100) == []


def test_config_values_need_deploy(team: Context) -> None:
    team.store.replace_config(team.store.get_app("shop").id, {"SECRET": "s3cret"})  # type: ignore[union-attr]
    assert config.get_config(as_user(team, "view"), "shop") == {"SECRET": config.HIDDEN}
    assert config.get_config(as_user(team, "deploy"), "shop") == {"SECRET": "s3cret"}
    code, out, err = run(as_user(team, "view"), "config:get", "shop", "SECRET")
    assert code == 1 and "s3cret" not in out and err == "error: you need the 'deploy' permission on 'shop'\n"


def test_access_commands(team: Context) -> None:
    owner = as_user(team, "owner")
    code, out, _ = run(owner, "access", "shop")
    assert code == 0 and "owner" in out and "deploy" in out
    assert run(owner, "access:add", "shop", "none")[0] == 0  # default view,deploy,operate
    grant = team.store.grant_of(team.store.get_app("shop").id, team.store.get_user("none").id)  # type: ignore[union-attr]
    assert grant == access.DEFAULT_GRANT
    code, _, err = run(owner, "access:update", "shop", "none", "--permissions", "deploy,bogus")
    assert code == 1 and "unknown permission 'bogus'" in err
    assert run(owner, "access:update", "shop", "none", "--permissions", "deploy")[0] == 0
    assert access.permissions_of(as_user(team, "none"), team.store.get_app("shop")) == {"view", "deploy"}  # type: ignore[arg-type]
    assert run(owner, "access:remove", "shop", "none")[0] == 0
    with pytest.raises(NotFound):
        access.authorize(as_user(team, "none"), "shop", "apps:info")
    # a manager may change access, a deployer may not; nobody removes the owner
    assert run(as_user(team, "manage"), "access:add", "shop", "none", "--permissions", "view")[0] == 0
    code, _, err = run(as_user(team, "deploy"), "access:remove", "shop", "none")
    assert code == 1 and err == "error: you need the 'manage' permission on 'shop'\n"
    code, _, err = run(owner, "access:remove", "shop", "owner")
    assert code == 1 and "transfer it first" in err


def test_transfer_needs_the_owner_or_an_admin(team: Context) -> None:
    code, _, err = run(as_user(team, "manage"), "apps:transfer", "shop", "manage")
    assert code == 1 and err == "error: you need the 'owner' permission on 'shop'\n"
    assert run(as_user(team, "owner"), "apps:transfer", "shop", "deploy")[0] == 0
    shop = team.store.get_app("shop")
    assert shop.owner_id == team.store.get_user("deploy").id  # type: ignore[union-attr]
    # the previous owner stays a collaborator, without manage
    assert access.permissions_of(as_user(team, "owner"), shop) == set(access.DEFAULT_GRANT)  # type: ignore[arg-type]
    assert run(as_user(team, "admin"), "apps:transfer", "shop", "owner")[0] == 0


def test_creating_apps(tmp_path: Path) -> None:
    ctx = host(tmp_path)
    keys.add_key(ctx, "root", pubkey(tmp_path, "root"))
    keys.add_key(ctx, "dev", pubkey(tmp_path, "dev"))
    dev = as_user(ctx, "dev")
    made = apps.ensure_app(dev, "devapp")  # what a first push does
    assert made.owner_id == dev.user_id
    assert access.permissions_of(dev, made) == {*access.PERMISSIONS, access.OWNER}
    # someone who cannot see an app may not push to it, nor learn that it exists
    with pytest.raises(NotFound):
        apps.ensure_app(as_user(ctx, "root").for_actor("x", False, user_id=-1), "devapp")
    admins_only = Context.open(Settings(data_dir=tmp_path / "data", app_create="admins"))
    dev2 = as_user(admins_only, "dev")
    with pytest.raises(PermissionDenied, match="only an admin may create apps"):
        apps.ensure_app(dev2, "another")
    assert apps.ensure_app(dev2, "devapp").name == "devapp"  # existing ones still take pushes
    assert apps.create_app(as_user(admins_only, "root"), "another").name == "another"


def test_app_create_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAAS_APP_CREATE", "admins")
    assert Settings.from_env().app_create == "admins"
    monkeypatch.setenv("PAAS_APP_CREATE", "nobody")
    with pytest.raises(SystemExit, match="PAAS_APP_CREATE"):
        Settings.from_env()


def test_keys_belong_to_users_and_the_first_user_is_admin(tmp_path: Path) -> None:
    ctx = host(tmp_path)
    first = keys.add_key(ctx, "alice", pubkey(tmp_path, "a1"))
    second = keys.add_key(ctx, "alice", pubkey(tmp_path, "a2"))
    bob = keys.add_key(ctx, "bob", pubkey(tmp_path, "b1"))
    alice = ctx.store.get_user("alice")
    assert alice is not None and alice.is_admin and alice.password_hash == ""
    assert (first.name, second.name) == ("alice", "alice-2") and first.user_id == second.user_id == alice.id
    assert not bob.is_admin and not ctx.store.get_user("bob").is_admin  # type: ignore[union-attr]
    session = keys.session_context(ctx, bob.fingerprint)
    assert session is not None and session.actor == "bob" and not session.is_admin
    keys.remove_key(ctx, "bob")
    assert keys.session_context(ctx, bob.fingerprint) is None


def test_an_open_session_is_rechecked(team: Context) -> None:
    deployer = as_user(team, "deploy")
    access.authorize(deployer, "shop", "config:set")
    assert access.still_allowed(deployer)
    access.update_access(as_user(team, "owner"), "shop", "deploy", "view")
    assert not access.still_allowed(deployer)


def test_a_push_of_a_removed_user_acts_as_nobody(team: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAAS_DATA_DIR", str(team.settings.data_dir))
    uid = team.store.get_user("deploy").id  # type: ignore[union-attr]
    monkeypatch.setenv("PAAS_ACTOR", "deploy")
    monkeypatch.setenv("PAAS_ACTOR_ID", str(uid))
    monkeypatch.setenv("PAAS_ACTOR_ADMIN", "1")  # even a stale admin flag
    pusher = pack_process._pusher(Settings.from_env())
    assert pusher.user_id == uid and not pusher.is_admin  # read fresh: deploy is no admin
    access.authorize(pusher, "shop", "git:push")
    team.store.remove_user(uid)
    nobody = pack_process._pusher(Settings.from_env())
    with pytest.raises(NotFound):
        access.authorize(nobody, "shop", "git:push")


def _old_store(path: Path) -> None:
    """A store made by today's schema (migrations 0001-0004), with keys, a user and apps."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    for number, sql in db._migrations():
        if number > 4:
            break
        for statement in db._statements(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    t = "2026-01-01T00:00:00Z"
    conn.executemany(
        "INSERT INTO ssh_keys (name, fingerprint, public_key, is_admin, created_at) VALUES (?, ?, ?, ?, ?)",
        [("alice", "SHA256:a", "ssh-ed25519 A", 1, t), ("bob", "SHA256:b", "ssh-ed25519 B", 0, t)],
    )
    conn.execute(
        "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ('carol', '$argon2id$x', 0, ?)",
        (t,),
    )
    conn.executemany("INSERT INTO apps (name, created_at) VALUES (?, ?)", [("shop", t), ("blog", t)])
    conn.close()


def test_migration_from_todays_schema(tmp_path: Path) -> None:
    path = tmp_path / "paas.db"
    _old_store(path)
    store = Store(path)
    alice, bob, carol = (store.get_user(n) for n in ("alice", "bob", "carol"))
    assert alice and bob and carol
    assert alice.is_admin and not bob.is_admin and not carol.is_admin
    assert carol.password_hash == "$argon2id$x"  # dashboard users keep their passwords
    assert store.get_key("alice").user_id == alice.id and store.get_key("bob").user_id == bob.id  # type: ignore[union-attr]
    assert {a.name: a.owner_id for a in store.list_apps()} == {"blog": alice.id, "shop": alice.id}
    ctx = Context(settings=Settings(data_dir=tmp_path), store=store)
    for name in ("shop", "blog"):  # nobody locked out: the admin keeps every app
        assert access.authorize(keys.session_context(ctx, "SHA256:a"), name, "apps:destroy")  # type: ignore[arg-type]
    with pytest.raises(NotFound):  # ... and bob, no admin, sees none until he is given access
        access.authorize(keys.session_context(ctx, "SHA256:b"), "shop", "apps:info")  # type: ignore[arg-type]
    store.close()
    assert Store(path).get_user("alice") is not None  # migrating again is a no-op


def test_a_key_named_like_an_existing_user_joins_that_user(tmp_path: Path) -> None:
    path = tmp_path / "paas.db"
    _old_store(path)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(
        "INSERT INTO ssh_keys (name, fingerprint, public_key, is_admin, created_at)"
        " VALUES ('carol', 'SHA256:c', 'ssh-ed25519 C', 0, '2026-01-01T00:00:00Z')"
    )
    conn.close()
    store = Store(path)
    carol = store.get_user("carol")
    assert carol is not None and store.get_key("carol").user_id == carol.id  # type: ignore[union-attr]
    assert carol.password_hash == "$argon2id$x"
    assert len(store.list_users()) == 3


def test_bad_permission_lists_are_one_line(team: Context) -> None:
    for text in ("", ",", "admin", "view,root"):
        with pytest.raises(PaasError, match="unknown permission"):
            access.parse_permissions(text)
    assert access.parse_permissions("deploy") == ("view", "deploy")


def test_plugin_commands_use_the_same_check(team: Context) -> None:
    """A third-party plugin's command: checked by the permission it declares; none: admins only."""
    import click

    @commands.define("hello:peek", "test", permission="deploy")
    @click.argument("app")
    def peek(env: commands.CommandEnv, app: str) -> None:
        env.echo("peeked")

    @commands.define("hello:raw", "test")
    @click.argument("app")
    def raw(env: commands.CommandEnv, app: str) -> None:
        env.echo("raw")

    declared = commands.Registered(peek, False, from_plugin=True)
    undeclared = commands.Registered(raw, False, from_plugin=True)
    try:
        access.declare("hello:peek", "deploy")
        with pytest.raises(PaasError, match="already in the permission table"):
            access.declare("config:set", "view")  # a plugin cannot loosen a core entry
        with pytest.raises(PermissionDenied, match="you need the 'deploy' permission on 'shop'"):
            commands._authorize(_env(as_user(team, "view")), "hello:peek", declared, {"app": "shop"})
        with pytest.raises(NotFound):
            commands._authorize(_env(as_user(team, "none")), "hello:peek", declared, {"app": "shop"})
        commands._authorize(_env(as_user(team, "deploy")), "hello:peek", declared, {"app": "shop"})
        with pytest.raises(PermissionDenied, match="only an admin may run hello:raw"):
            commands._authorize(_env(as_user(team, "owner")), "hello:raw", undeclared, {"app": "shop"})
        commands._authorize(_env(as_user(team, "admin")), "hello:raw", undeclared, {"app": "shop"})
    finally:
        access.OPERATIONS.pop("hello:peek", None)


def _env(ctx: Context) -> commands.CommandEnv:
    return commands.CommandEnv(ctx=ctx, out=io.StringIO(), err=io.StringIO())


def test_a_key_user_has_no_dashboard_password_until_one_is_set(team: Context) -> None:
    from paas.errors import Unauthenticated
    from paas.services import users

    with pytest.raises(Unauthenticated):
        users.login(team, "view", "", "127.0.0.1")
    with pytest.raises(Unauthenticated):
        users.login(team, "view", "anything at all", "127.0.0.1")
    users.set_password(team, "view", "a long password")
    assert users.login(team, "view", "a long password", "127.0.0.1").name == "view"


def test_only_admins_list_every_key(team: Context) -> None:
    assert {k.name for k in keys.list_keys(as_user(team, "view"))} == {"view"}
    assert len(keys.list_keys(as_user(team, "admin"))) == 7


def test_following_logs_ends_when_access_goes(team: Context) -> None:
    """What a dashboard log stream runs: it stops once the collaborator is removed."""
    import threading

    from paas.services import logs

    viewer = as_user(team, "view")
    done = threading.Event()
    seen: list[str] = []
    ended: list[Exception] = []

    def follow() -> None:
        try:
            logs.follow(viewer, "shop", seen.append, lambda: False, 1)
        except PaasError as exc:
            ended.append(exc)
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    assert not done.wait(1.5)  # following (no containers yet)
    access.remove_access(as_user(team, "owner"), "shop", "view")
    assert done.wait(5)
    assert [str(e) for e in ended] == ["session ended: access to the app was removed"]


@pytest.mark.parametrize("role", access.ROLES)
def test_allowed_answers_what_authorize_would(shared_team: Context, role: str) -> None:
    """What the dashboard shows (`allowed`) is what the POST behind it gets (`authorize`), for
    every operation in the table, and asking leaves no denial in the audit log."""
    ctx = as_user(shared_team, role)
    rights = access.allowed_on(ctx, "shop")
    for operation in sorted(access.OPERATIONS):
        before = len(shared_team.store.list_events(10_000))
        shown = access.allowed(ctx, "shop", operation)
        assert len(shared_team.store.list_events(10_000)) == before
        try:
            access.authorize(ctx, "shop", operation)
        except (NotFound, PermissionDenied):
            passed = False
        else:
            passed = True
        assert shown is passed is rights(operation), (role, operation)
    assert bool(rights) is (role != "none")
    assert (
        rights.describe()
        == {
            "none": "none",
            "view": "view",
            "deploy": "view, deploy",
            "operate": "view, operate",
            "manage": "view, manage",
            "owner": "owner: every permission",
            "admin": "admin: every permission",
        }[role]
    )
    with pytest.raises(KeyError):
        rights("no:such-operation")  # a button for an operation the table lacks is a bug


def test_allowed_on_a_missing_or_invalid_name_is_nothing(team: Context) -> None:
    admin = as_user(team, "admin")
    for name in ("nosuch", "Not A Name", "", "../shop"):
        assert not access.allowed_on(admin, name)
        assert access.allowed(admin, name, "apps:info") is False


def test_may_create_says_what_require_create_does(tmp_path: Path) -> None:
    for setting in ("everyone", "admins"):
        ctx = host(tmp_path / setting, app_create=setting)
        keys.add_key(ctx, "root", pubkey(tmp_path, f"root-{setting}"))
        keys.add_key(ctx, "dev", pubkey(tmp_path, f"dev-{setting}"))
        for name in ("root", "dev"):
            user = as_user(ctx, name)
            try:
                access.require_create(user)
            except PermissionDenied:
                passed = False
            else:
                passed = True
            assert access.may_create(user) is passed, (setting, name)


def test_allowed_on_apps_answers_as_allowed_on_each(team: Context) -> None:
    apps.create_app(as_user(team, "none"), "own")  # an app of the role without access to shop
    for role in access.ROLES:
        ctx = as_user(team, role)
        many = access.allowed_on_apps(ctx, team.store.list_apps())
        for name in ("shop", "own"):
            one = access.allowed_on(ctx, name)
            assert many[name] == one, (role, name)


def test_an_open_session_outlives_the_app_it_destroyed(team: Context) -> None:
    owner = as_user(team, "owner")  # what the SSH server holds for the owner's `apps:destroy`
    app = access.authorize(owner, "shop", "apps:destroy")
    team.store.delete_app(app.id)  # what apps.destroy_app ends with, the command still running
    assert access.still_allowed(owner)  # not "access to the app was removed" mid-command
