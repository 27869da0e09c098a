"""Backing services' shared rules without dockerd: names, records, app.json addons, backups
(atomic, checksummed, pruned), schedules. The containers are covered end to end."""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import NotFound, PaasError
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())  # loads the built-in plugins (the paas_plugins package)
PG = importlib.import_module("paas_plugins.datastores.postgres").KIND
REDIS = importlib.import_module("paas_plugins.datastores.redis").KIND
backing = importlib.import_module("paas_plugins.datastores.service")
Link, Record = backing.Link, backing.Record


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context.open(Settings(data_dir=tmp_path / "data"), actor="test", is_admin=True)


def record(ctx: Context, name: str = "db1", **kw) -> Record:  # type: ignore[no-untyped-def]
    rec = Record(kind="postgres", name=name, password="ab12" * 12, created_at=backing.now_iso(), **kw)
    backing._save(ctx, rec)
    return rec


@pytest.mark.parametrize("name", ["db", "my-db-2", "a" * 30])
def test_good_names(name: str) -> None:
    assert backing.check_name(name, PG) == name


@pytest.mark.parametrize("name", ["", "Db", "1db", "db-", "a" * 31, "../etc", "db/x", "db x", "db_1", "-db"])
def test_bad_names_are_one_line(name: str) -> None:
    with pytest.raises(PaasError, match="invalid postgres service name"):
        backing.check_name(name, PG)


def test_record_is_private_and_round_trips(ctx: Context) -> None:
    web, other = ctx.store.create_app("web-app"), ctx.store.create_app("other")
    rec = record(ctx, links=[Link("web-app", None, web.id), Link("other", "EXTRA", other.id)])
    path = ctx.settings.data_dir / "services" / "postgres" / "db1" / "service.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert not list(path.parent.glob(".tmp-*"))
    loaded = backing.get(ctx, PG, "db1")
    assert loaded == rec and loaded.linked_apps() == {"web-app", "other"}
    with pytest.raises(NotFound, match="postgres service 'nope' does not exist"):
        backing.get(ctx, PG, "nope")
    assert [r.name for r in backing.all_records(ctx, PG)] == ["db1"]
    assert backing.all_records(ctx, REDIS) == []


def test_urls_and_config_keys() -> None:
    rec = Record(kind="postgres", name="db1", password="pw", created_at="")
    assert PG.url(rec) == "postgres://postgres:pw@paas-postgres-db1:5432/db1"
    assert (
        REDIS.url(Record(kind="redis", name="c", password="pw", created_at=""))
        == "redis://:pw@paas-redis-c:6379"
    )
    assert PG.env_key(None) == "DATABASE_URL" and PG.env_key("EXTRA") == "EXTRA_URL"
    assert REDIS.env_key(None) == "REDIS_URL"
    assert backing.mask(PG.url(rec), "pw") == "postgres://postgres:********@paas-postgres-db1:5432/db1"


def test_links_from_before_app_ids_are_to_the_app_of_that_name_then(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record written before links held the app's id: its links go to the apps of those names
    now (a link to no app is dropped), and the reconcile pass writes them so, once."""
    web = ctx.store.create_app("web")
    path = ctx.settings.data_dir / "services" / "postgres" / "db1" / "service.json"
    record(ctx)
    raw = json.loads(path.read_text())
    raw["links"] = [{"app": "web", "alias": None}, {"app": "gone", "alias": "OLD"}]
    path.write_text(json.dumps(raw))
    assert backing.get(ctx, PG, "db1").links == [Link("web", None, web.id)]
    monkeypatch.setattr(backing, "_converge", lambda *a: [])
    backing._reconcile_one(ctx, PG, backing.get(ctx, PG, "db1"), datetime.now(UTC))
    assert json.loads(path.read_text())["links"] == [{"app": "web", "alias": None, "app_id": web.id}]


def test_info_masks_the_password_for_non_admins(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    bob = ctx.store.add_user("bob", "", False, "now")
    rec = record(ctx, owner_id=bob.id)
    monkeypatch.setattr(backing, "container_of", lambda *a: None)
    assert rec.password in backing.info(ctx, PG, "db1")["url"]
    owner = ctx.for_actor("bob", is_admin=False)
    shown = backing.info(owner, PG, "db1")
    assert rec.password not in json.dumps(shown) and shown["owner"] == "bob"
    with pytest.raises(NotFound, match="postgres service 'db1' does not exist"):
        backing.info(ctx.for_actor("eve", is_admin=False), PG, "db1")


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("heroku-postgresql", ("heroku-postgresql", None)),
        ("heroku-postgresql:mini", ("heroku-postgresql", None)),
        ({"plan": "dokku-postgres"}, ("dokku-postgres", None)),
        ({"plan": "heroku-redis:mini", "as": "CACHE"}, ("heroku-redis", "CACHE")),
        ({"nope": 1}, None),
        (42, None),
    ],
)
def test_addon_entries(entry: object, parsed: tuple | None) -> None:
    assert backing.addon_kind(entry) == parsed


def test_addons_are_only_for_the_first_deploy_and_only_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # No entry of this kind: nothing is looked up at all (ctx may be anything).
    assert (
        backing.provision_addons(None, PG, None, ["heroku-redis", {"plan": "papertrail"}], BuildLog()) == []
    )  # type: ignore[arg-type]

    class Store:
        def current_release(self, app_id: int) -> object:
            return object()  # deployed before

    class Ctx:
        store = Store()

    class App:
        id, name = 1, "web"

    created = []
    monkeypatch.setattr(backing, "create", lambda *a: created.append(a))
    assert backing.provision_addons(Ctx(), PG, App(), ["heroku-postgresql"], BuildLog()) == []  # type: ignore[arg-type]
    assert created == []


def fake_export(data: list[bytes], fail: bool = False):  # type: ignore[no-untyped-def]
    def export(ctx, kind, record, out):  # type: ignore[no-untyped-def]
        for chunk in data:
            out(chunk)
        if fail:
            raise PaasError("export of postgres service db1 failed: boom")

    return export


def test_a_backup_is_atomic_checksummed_and_listed(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    record(ctx)
    monkeypatch.setattr(backing, "_export", fake_export([b"PGDMP", b"x" * 1000]))
    done = backing.backup(ctx, PG, "db1")
    path = ctx.settings.data_dir / "services" / "postgres" / "db1" / "backups" / done.id
    assert path.read_bytes() == b"PGDMP" + b"x" * 1000
    assert done.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and done.size == 1005
    assert path.stat().st_mode & 0o777 == 0o600
    assert backing.list_backups(ctx, PG, "db1") == [done]
    assert backing.backup_path(ctx, PG, "db1", done.id) == path
    backing.verify(path)
    path.write_bytes(b"PGDMP" + b"y" * 1000)  # same size, other bytes
    with pytest.raises(PaasError, match="does not match its checksum"):
        backing.verify(path)


def test_a_failed_backup_leaves_nothing(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    record(ctx)
    monkeypatch.setattr(backing, "_export", fake_export([b"PGDMP half"], fail=True))
    with pytest.raises(PaasError, match="boom"):
        backing.backup(ctx, PG, "db1")
    folder = ctx.settings.data_dir / "services" / "postgres" / "db1" / "backups"
    assert list(folder.iterdir()) == []
    assert backing.list_backups(ctx, PG, "db1") == []


@pytest.mark.parametrize(
    "backup_id",
    ["../service.json", "db1-20260101T000000Z.dump/../../x", "other-20260101T000000Z.dump", "", "db1.dump"],
)
def test_backup_ids_are_never_paths(ctx: Context, backup_id: str) -> None:
    record(ctx)
    with pytest.raises(PaasError, match="invalid backup id"):
        backing.backup_path(ctx, PG, "db1", backup_id)


def test_backups_of_a_service_that_never_existed(ctx: Context) -> None:
    with pytest.raises(NotFound, match="postgres service 'ghost' does not exist and has no backups"):
        backing.list_backups(ctx, PG, "ghost")


def test_missing_backup(ctx: Context) -> None:
    record(ctx)
    with pytest.raises(NotFound, match="has no backup"):
        backing.backup_path(ctx, PG, "db1", "db1-20260101T000000Z.dump")


def test_keep_prunes_only_scheduled_backups(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    record(ctx, schedule="0 3 * * *", keep=2)
    monkeypatch.setattr(backing, "_export", fake_export([b"PGDMP"]))
    manual = backing.backup(ctx, PG, "db1")
    scheduled = [backing._backup(ctx, PG, "db1", "scheduled") for _ in range(4)]
    backing.prune_scheduled(ctx, PG, "db1")
    left = {b.id for b in backing.list_backups(ctx, PG, "db1")}
    assert left == {manual.id, scheduled[-1].id, scheduled[-2].id}


def test_schedules(ctx: Context) -> None:
    record(ctx)
    with pytest.raises(PaasError, match="invalid cron schedule"):
        backing.set_schedule(ctx, PG, "db1", "every day", None)
    with pytest.raises(PaasError, match="--keep"):
        backing.set_schedule(ctx, PG, "db1", "0 3 * * *", 0)
    rec = backing.set_schedule(ctx, PG, "db1", "0 3 * * *", 7)
    assert (rec.schedule, rec.keep) == ("0 3 * * *", 7) and rec.last_scheduled
    # Due once the next 03:00 after scheduling has passed, not before, and not twice.
    rec.last_scheduled = "2026-01-01T12:00:00+00:00"
    assert not backing._due(rec, datetime(2026, 1, 2, 2, 59, tzinfo=UTC))
    assert backing._due(rec, datetime(2026, 1, 2, 3, 0, 30, tzinfo=UTC))
    rec.last_scheduled = "2026-01-02T03:00:30+00:00"
    assert not backing._due(rec, datetime(2026, 1, 2, 3, 5, tzinfo=UTC))
    off = backing.set_schedule(ctx, PG, "db1", "off", None)
    assert off.schedule is None and off.keep is None


def test_the_service_lock_makes_reconcile_skip(ctx: Context) -> None:
    with backing.service_lock(ctx, PG, "db1"), pytest.raises(backing.Busy):
        with backing.service_lock(ctx, PG, "db1", wait=False):
            pass


def test_reconcile_runs_a_due_scheduled_backup_once_and_prunes(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = record(ctx, schedule="0 3 * * *", keep=1, last_scheduled="2026-01-01T12:00:00+00:00")
    monkeypatch.setattr(backing, "_converge", lambda *a: [])
    monkeypatch.setattr(backing, "_export", fake_export([b"PGDMP"]))
    old = backing._backup(ctx, PG, rec.name, "scheduled")
    at = datetime(2026, 1, 2, 3, 0, 5, tzinfo=UTC)
    assert backing.reconcile(ctx, PG, now=at) == ["postgres db1: scheduled backup started"]
    for thread in [t for t in threading.enumerate() if t.name.startswith("backup-")]:
        thread.join(10)
    assert backing.reconcile(ctx, PG, now=at) == []  # that tick is handled
    left = backing.list_backups(ctx, PG, "db1")
    assert len(left) == 1 and left[0].id != old.id  # keep 1: the older scheduled one went
    assert backing.get(ctx, PG, "db1").last_scheduled == "2026-01-02T03:00:05+00:00"


def test_a_link_whose_release_fails_is_taken_back(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    record(ctx)
    ctx.store.create_app("web")
    left: list[str] = []
    monkeypatch.setattr(backing, "_running", lambda *a: object())
    monkeypatch.setattr(backing, "container_of", lambda *a: object())
    monkeypatch.setattr(backing, "_join_network", lambda *a: "net-web")
    monkeypatch.setattr(backing, "wait_healthy", lambda *a, **k: None)
    monkeypatch.setattr(backing.sc, "disconnect", lambda client, c, network: left.append(network))
    seen = []

    def failing(ctx, app, values, log, restart):  # type: ignore[no-untyped-def]
        seen.append(backing.get(ctx, PG, "db1").linked_apps())  # recorded while the release runs
        raise PaasError("deploy of v2 failed: release command failed")

    monkeypatch.setattr(backing.config_service, "set_config", failing)
    monkeypatch.setattr(backing.Context, "docker", property(lambda self: None))
    with pytest.raises(PaasError, match="deploy of v2 failed"):
        backing.link(ctx, PG, "db1", "web", None, BuildLog())
    assert seen == [{"web"}]
    assert backing.get(ctx, PG, "db1").links == [] and len(left) == 1 and left[0].endswith("-web")
