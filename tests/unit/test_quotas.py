"""Quotas (issue 27): the operator's ceilings and each user's quotas, checked at the service entry
before anything changes; quota:set / quota:report. Docker is faked where a count needs it; the
e2e attack tests (tests/e2e/test_quotas.py) drive the real thing."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from paas import commands
from paas.core import names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import QuotaExceeded
from paas.services import access, apps, formation, oneoff, processes, push, quotas, releases, resources
from paas.settings import Settings
from paas.store import App
from tests.unit.test_access import as_user, pubkey

GIB = 1 << 30


def over(start: str):  # type: ignore[no-untyped-def]
    """A QuotaExceeded whose one line starts so."""
    return pytest.raises(QuotaExceeded, match=f"^{re.escape(start)}")


def host(tmp_path: Path, **settings: object) -> Context:
    return Context.open(
        Settings(data_dir=tmp_path / "data", **settings), actor="host", is_admin=True, on_host=True
    )  # type: ignore[arg-type]


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = commands.dispatch(list(argv), commands.CommandEnv(ctx=ctx, out=out, err=err, on_host=ctx.on_host))
    return code, out.getvalue(), err.getvalue()


def deployed(ctx: Context, name: str, owner: str, web: int = 1, worker: int = 0) -> App:
    """An app with a succeeded release in the store (nothing runs: no docker here)."""
    from paas.services import keys  # noqa: F401 - keys are added by the fixture

    app = apps.create_app(as_user(ctx, owner), name)
    build = ctx.store.create_build(app.id, "a" * 40, owner)
    ctx.store.finish_build(build, "succeeded", "", f"paas/app-{name}:b1", {"web": "w", "worker": "x"})
    release = ctx.store.create_release(app.id, build, {}, {"web": web, "worker": worker}, "Deploy", owner)
    ctx.store.set_release_status(release.id, "succeeded")
    ctx.store.set_formation(app.id, {"web": web, "worker": worker})
    return ctx.store.get_app(name)  # type: ignore[return-value]


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    from paas.services import keys

    c = host(tmp_path, quota_apps=3, quota_processes=4, quota_memory=2 * GIB, quota_oneoffs=2)
    for name in ("admin", "bob", "carol"):
        keys.add_key(c, name, pubkey(tmp_path, name))
    return c


# ceilings
@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        ("--memory", "200g", "memory 200g is over the maximum of 4g per process (PAAS_MAX_MEMORY)"),
        ("--pids", "100000", "pids 100000 is over the maximum of 4096 per process (PAAS_MAX_PIDS)"),
    ],
)
def test_a_non_admin_cannot_raise_a_limit_past_the_ceiling(
    ctx: Context, option: str, value: str, line: str
) -> None:
    app = apps.create_app(as_user(ctx, "bob"), "bobapp")
    code, out, err = run(as_user(ctx, "bob"), "resource:limit", "bobapp", option, value)
    assert code == 1 and out == "" and err == f"error: {line}; an admin may set more\n"
    assert resources.report(ctx, "bobapp")["app"] == {"memory": "512m", "cpus": 1.0, "pids": 256}
    assert ctx.store.get_setting(app.id, "resource_limits") is None
    code, _, err = run(as_user(ctx, "admin"), "resource:limit", "bobapp", option, value)
    assert code == 0, err


def test_the_cpu_ceiling_is_the_setting_or_the_cores(tmp_path: Path) -> None:
    from paas.services import keys

    c = host(tmp_path, max_cpus=0.5)
    keys.add_key(c, "admin", pubkey(tmp_path, "admin"))
    keys.add_key(c, "bob", pubkey(tmp_path, "bob"))
    apps.create_app(as_user(c, "bob"), "bobapp")
    with over("cpu 0.75 is over the maximum of 0.5 per process (PAAS_MAX_CPUS)"):
        resources.set_limits(as_user(c, "bob"), "bobapp", None, None, "0.75", None, BuildLog())
    resources.set_limits(as_user(c, "bob"), "bobapp", None, None, "0.5", None, BuildLog())


# apps
def test_apps_past_the_quota_are_refused_and_admins_are_not_held(ctx: Context) -> None:
    bob = as_user(ctx, "bob")
    for n in range(3):
        apps.create_app(bob, f"bob{n}")
    code, _, err = run(bob, "apps:create", "bob3")
    assert (code, err) == (1, "error: over the apps quota of bob (3): they own 3 app(s) already\n")
    assert ctx.store.get_app("bob3") is None
    for n in range(5):
        apps.create_app(as_user(ctx, "admin"), f"adm{n}")
    refused = [e for e in ctx.store.list_events() if e["action"] == "quota:refused"]
    assert [e["user"] for e in refused] == ["bob"]


def test_a_transfer_cannot_fill_a_neighbours_quota(ctx: Context) -> None:
    carol = as_user(ctx, "carol")
    for n in range(3):
        apps.create_app(carol, f"carol{n}")
    apps.create_app(as_user(ctx, "bob"), "gift")
    with over("over the apps quota of carol (3): they own 3 app(s) already"):
        apps.transfer(as_user(ctx, "bob"), "gift", "carol")
    assert ctx.store.get_app("gift").owner_id == ctx.store.get_user("bob").id  # type: ignore[union-attr]
    apps.transfer(as_user(ctx, "admin"), "gift", "carol")  # an admin may


# processes and memory
def test_scaling_past_the_processes_quota_is_refused_before_a_release(ctx: Context) -> None:
    deployed(ctx, "one", "bob", web=2)
    deployed(ctx, "two", "bob", web=1)
    before = len(ctx.store.list_releases(ctx.store.get_app("two").id))  # type: ignore[union-attr]
    with over("over the processes quota of bob (4): this would run 5 (now 3)"):
        formation.scale(as_user(ctx, "bob"), "two", {"worker": 2}, BuildLog())
    app = ctx.store.get_app("two")
    assert len(ctx.store.list_releases(app.id)) == before  # type: ignore[union-attr]
    assert ctx.store.get_formation(app.id) == {"web": 1, "worker": 0}  # type: ignore[union-attr]


def test_a_collaborators_change_counts_against_the_owner(ctx: Context) -> None:
    deployed(ctx, "shop", "bob", web=4)
    access.add_access(as_user(ctx, "bob"), "shop", "carol")
    with over("over the processes quota of bob (4)"):
        formation.scale(as_user(ctx, "carol"), "shop", {"web": 5}, BuildLog())


def test_memory_counts_the_limits_of_running_processes(ctx: Context) -> None:
    deployed(ctx, "shop", "bob", web=2)  # 2 x 512m = 1g of the 2g
    assert quotas.user_load(ctx, ctx.store.get_user("bob").id) == quotas.Load(2, GIB)  # type: ignore[union-attr]
    with over("over the memory quota of bob (2g): this would run processes with 3g"):
        resources.set_limits(as_user(ctx, "bob"), "shop", "web", "1536m", None, None, BuildLog())
    assert resources.report(ctx, "shop")["types"]["web"]["memory"] == "512m"
    quotas.set_quotas(ctx, "bob", ["processes=10"])
    with over("over the memory quota of bob (2g): this would run processes with 2.5g"):
        formation.scale(as_user(ctx, "bob"), "shop", {"worker": 3}, BuildLog())


def test_a_stopped_app_counts_nothing_until_it_starts(ctx: Context) -> None:
    deployed(ctx, "big", "bob", web=3)
    stopped = deployed(ctx, "other", "bob", web=2)
    ctx.store.set_stopped(stopped.id, True)
    assert quotas.user_load(ctx, ctx.store.get_user("bob").id).processes == 3  # type: ignore[union-attr]
    with over("over the processes quota of bob (4): this would run 5 (now 3)"):
        processes.start(as_user(ctx, "bob"), "other", BuildLog())
    with pytest.raises(QuotaExceeded):
        processes.restart(as_user(ctx, "bob"), "other", None, BuildLog())


def test_a_rollback_and_a_push_are_held_too(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    deployed(ctx, "full", "bob", web=4)
    app = apps.create_app(as_user(ctx, "bob"), "fresh")
    monkeypatch.setattr(push.disk, "require_free", lambda ctx: None)
    with over("over the processes quota of bob (4): this would run 5 (now 4)"):
        push.deploy_push(as_user(ctx, "bob"), "fresh", None, "b" * 40, BuildLog())  # type: ignore[arg-type]
    assert ctx.store.list_builds(app.id) == []
    # `full` ran web and worker at v1; v2 (worker only) runs worker=4; back to v1 would add web=1.
    full = ctx.store.get_app("full")
    assert full is not None
    build = ctx.store.create_build(full.id, "c" * 40, "bob")
    ctx.store.finish_build(build, "succeeded", "", "paas/app-full:b2", {"worker": "x"})
    v2 = ctx.store.create_release(full.id, build, {}, {"worker": 4}, "Deploy", "bob")
    ctx.store.set_release_status(v2.id, "succeeded")
    ctx.store.set_formation(full.id, {"worker": 4})
    monkeypatch.setattr(releases, "new_release", lambda *a, **k: pytest.fail("deployed"))
    with over("over the processes quota of bob (4): this would run 5 (now 4)"):
        releases.rollback(as_user(ctx, "bob"), "full", "v1", BuildLog())


def test_a_change_that_adds_nothing_is_never_refused(ctx: Context) -> None:
    deployed(ctx, "shop", "bob", web=4)
    quotas.set_quotas(ctx, "bob", ["processes=1"])
    app = ctx.store.get_app("shop")
    quotas.require_room(as_user(ctx, "bob"), app, {"web": 4})  # a restart or config change
    quotas.require_room(as_user(ctx, "bob"), app, {"web": 3})  # scaling down
    with pytest.raises(QuotaExceeded):
        quotas.require_room(as_user(ctx, "bob"), app, {"web": 5})


# one-offs
class FakeApi:
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def containers(self, all: bool, filters: dict) -> list[dict]:  # noqa: A002 - docker's name
        assert f"{names.LABEL_ROLE}={names.ROLE_RUN}" in filters["label"]
        return self.rows


def test_one_offs_past_the_quota_are_refused(ctx: Context) -> None:
    app = deployed(ctx, "shop", "bob")
    deployed(ctx, "elsewhere", "carol")
    rows = [
        {"Labels": {names.LABEL_APP: "shop"}, "State": "running"},
        {"Labels": {names.LABEL_APP: "shop"}, "State": "created"},
        {"Labels": {names.LABEL_APP: "shop"}, "State": "exited"},
        {"Labels": {names.LABEL_APP: "elsewhere"}, "State": "running"},
    ]
    ctx._extra["docker"] = SimpleNamespace(api=FakeApi(rows))
    assert quotas.oneoffs_running(ctx, app.owner_id) == 2  # type: ignore[arg-type]
    with over("over the oneoffs quota of bob (2): 2 one-off container"):
        oneoff.create_oneoff(as_user(ctx, "bob"), "shop", "sleep 1", tty=False, detached=True)
    assert quotas.oneoffs_running(ctx, ctx.store.get_user("carol").id) == 1  # type: ignore[union-attr]


# disk
def test_a_push_over_the_disk_quota_is_refused(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    app = apps.create_app(as_user(ctx, "bob"), "shop")
    ctx.store.set_disk_usage(app.id, {"repo": 3 * GIB, "containers": 3 * GIB}, 0.0)
    monkeypatch.setattr(push.disk, "require_free", lambda ctx: None)
    with over("over the disk quota of bob (5g): their apps use 6g"):
        push.deploy_push(as_user(ctx, "bob"), "shop", None, "b" * 40, BuildLog())  # type: ignore[arg-type]


# quota:set and quota:report
def test_quota_set_is_for_admins_and_report_shows_usage(ctx: Context) -> None:
    deployed(ctx, "shop", "bob", web=2)
    code, _, err = run(as_user(ctx, "bob"), "quota:set", "bob", "apps=100")
    assert (code, err) == (1, "error: only an admin may run quota:set\n")
    code, out, err = run(as_user(ctx, "admin"), "quota:set", "bob", "apps=5", "memory=8g")
    assert code == 0, err
    code, out, err = run(as_user(ctx, "bob"), "quota:report", "--format", "json")
    data = json.loads(out)
    assert data["user"] == "bob" and data["quotas"]["apps"] == {"limit": 5, "used": 1, "default": False}
    assert data["quotas"]["memory"] == {"limit": 8 * GIB, "used": GIB, "default": False}
    assert data["quotas"]["processes"] == {"limit": 4, "used": 2, "default": True}
    code, out, _ = run(as_user(ctx, "bob"), "quota:report")
    assert "apps              1 of 5" in out and "processes         2 of 4         (default)" in out
    code, _, err = run(as_user(ctx, "bob"), "quota:report", "carol")
    assert (code, err) == (1, "error: only an admin may see another user's quotas\n")
    assert run(as_user(ctx, "admin"), "quota:report", "carol")[0] == 0
    code, out, _ = run(ctx, "quota:report", "--format", "json")  # root on the host: everyone
    assert code == 0 and [d["user"] for d in json.loads(out)] == ["admin", "bob", "carol"]
    assert run(as_user(ctx, "admin"), "quota:set", "bob", "apps=default")[0] == 0
    assert quotas.of_user(ctx, ctx.store.get_user("bob").id)["apps"] == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bad",
    ["apps", "nosuch=1", "apps=-1", "apps=x", "memory=lots", "apps=1000000", "memory="],
)
def test_quota_set_refuses_bad_values_and_changes_nothing(ctx: Context, bad: str) -> None:
    code, out, err = run(as_user(ctx, "admin"), "quota:set", "bob", "processes=9", bad)
    assert code == 1 and out == "" and err.startswith("error: invalid ") and err.count("\n") == 1
    assert ctx.store.user_quotas(ctx.store.get_user("bob").id) == {}  # type: ignore[union-attr]


def test_quota_commands_are_in_the_permission_table() -> None:
    assert "quota:report" in access.APP_LESS and "quota:set" in access.ADMIN_ONLY


def test_an_admins_open_session_ends_when_they_are_demoted(ctx: Context) -> None:
    from paas.services import users

    users.set_admin(ctx, "bob", True)
    session = as_user(ctx, "bob")  # what the SSH server holds for an open `logs -t`
    assert access.still_allowed(session)
    users.set_admin(ctx, "bob", False)
    assert not access.still_allowed(session)
    assert access.still_allowed(Context(settings=ctx.settings, store=ctx.store, actor="paas", is_admin=True))


def test_one_offs_started_at_once_cannot_all_pass_the_same_count(ctx: Context) -> None:
    import threading
    import time

    app = deployed(ctx, "shop", "bob")
    rows: list[dict] = []
    ctx._extra["docker"] = SimpleNamespace(api=FakeApi(rows))
    outcomes: list[str] = []

    def session() -> None:
        try:
            with quotas.oneoff_slot(as_user(ctx, "bob"), app):
                time.sleep(0.2)  # creating the container
                rows.append({"Labels": {names.LABEL_APP: "shop"}, "State": "created"})
            outcomes.append("created")
        except QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=session) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created", "created", "refused", "refused", "refused"]  # quota 2
