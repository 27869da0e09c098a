"""The backup plugin's rules with the real restic on local folders (no docker: no services here):
what a backup holds and hides, the key's rules, targets, the store copied whole and one app
copied alone, schedules, and admins only at every entry."""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paas import commands
from paas.core.backup import RestoreSource
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError, PermissionDenied
from paas.plugins import plugins
from paas.settings import Settings
from paas.store import Store
from paas.store.db import _migrations, connect
from paas.store.snapshot import check_copy, latest_schema

plugins(set())  # loads the built-in plugins (the paas_plugins package)
service = importlib.import_module("paas_plugins.backup.service")
restic = importlib.import_module("paas_plugins.backup.restic")

needs_restic = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")
SECRET = "s3cr3t-config-value-9f8e7d"


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "backup.key"
    path.parent.mkdir()
    path.write_text("the operator's key\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def ctx(tmp_path: Path, key: Path) -> Context:
    settings = Settings(data_dir=tmp_path / "data", extra={"PAAS_BACKUP_PASSWORD_FILE": str(key)})
    ctx = Context.open(settings, actor="test", is_admin=True)
    app = ctx.store.create_app("shop")
    ctx.store.replace_config(app.id, {"SECRET": SECRET})
    repo = settings.repos_dir / "shop.git"
    repo.mkdir(parents=True)
    (repo / "HEAD").write_text("ref: refs/heads/main\n")
    (settings.plugins_dir / "certs" / f"app-{app.id}").mkdir(parents=True)
    (settings.plugins_dir / "certs" / f"app-{app.id}" / "server.key").write_text("PRIVATE KEY " + SECRET)
    return ctx


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = commands.dispatch(list(argv), commands.CommandEnv(ctx=ctx, out=out, err=err))
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- a backup, with the real restic


@needs_restic
def test_a_backup_reveals_nothing_without_the_key_and_verifies_with_it(ctx: Context, tmp_path: Path) -> None:
    target = tmp_path / "backups"
    done = service.create(ctx, str(target), BuildLog())
    assert done.apps == 1 and done.files >= 4
    for path in target.rglob("*"):  # config values, private keys, the store: all encrypted
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and b"SQLite format" not in data, path
    snapshots = service.list_backups(ctx, str(target))
    assert [s.short_id for s in snapshots] == [done.id]
    checked = service.verify(ctx, done.id, str(target), BuildLog())
    assert checked["apps"] == ["shop"] and checked["checksums"] >= 1
    assert not list(service.names.backup_scratch_parent(ctx.settings).iterdir())  # scratch removed
    events = [e["action"] for e in ctx.store.list_events()]
    assert "backup:create" in events and "backup:verify" in events

    other = tmp_path / "other.key"
    other.write_text("not the operator's key\n")
    other.chmod(0o600)
    wrong = dataclasses.replace(
        ctx, settings=dataclasses.replace(ctx.settings, extra={"PAAS_BACKUP_PASSWORD_FILE": str(other)})
    )
    with pytest.raises(PaasError, match="the backup key does not open it"):
        service.list_backups(wrong, str(target))


@needs_restic
def test_a_second_backup_sends_only_what_changed(ctx: Context, tmp_path: Path) -> None:
    target = tmp_path / "backups"
    big = ctx.settings.storage_dir / "files"
    big.mkdir(parents=True)
    (big / "blob").write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    first = service.create(ctx, str(target), BuildLog())
    second = service.create(ctx, str(target), BuildLog())
    assert first.bytes_added > 1 << 20
    assert second.bytes_added < first.bytes_added / 4


@needs_restic
def test_a_corrupted_backup_is_refused_and_a_restore_over_apps_needs_force(
    ctx: Context, tmp_path: Path
) -> None:
    target = tmp_path / "backups"
    done = service.create(ctx, str(target), BuildLog())
    with pytest.raises(PaasError, match="this platform has 1 app"):
        service.restore(ctx, done.id, str(target), force=False, app=None, log_=BuildLog())
    for pack in (target / "data").rglob("*"):
        if pack.is_file():
            pack.chmod(0o600)
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))
    with pytest.raises(PaasError, match="failed"):
        service.verify(ctx, done.id, str(target), BuildLog())
    with pytest.raises(PaasError, match="failed"):
        service.restore(ctx, done.id, str(target), force=True, app="shop", log_=BuildLog())
    assert ctx.store.get_config(ctx.store.get_app("shop").id) == {"SECRET": SECRET}  # untouched
    assert "backup:verify-failed" in [e["action"] for e in ctx.store.list_events()]


def test_a_backup_whose_checksums_do_not_match_is_refused(ctx: Context, tmp_path: Path) -> None:
    root = tmp_path / "laid-out"
    staging = root / service.names.BACKUP_STAGING
    staging.mkdir(parents=True)
    ctx.store.backup_to(staging / "paas.db")
    manifest = {"format": 1, "checksums": {f"{service.names.BACKUP_STAGING}/paas.db": "0" * 64}}
    (staging / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PaasError, match="damaged: paas.db do not match"):
        service._check_layout(root)
    manifest["checksums"] = {"../../etc/passwd": "0" * 64}
    (staging / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PaasError, match="damaged"):
        service._check_layout(root)


# ---------------------------------------------------------------- the key and the target


def test_the_key_must_exist_be_private_and_live_outside_the_data_dir(ctx: Context, key: Path) -> None:
    key.chmod(0o644)
    with pytest.raises(PaasError, match="readable by others: chmod 600"):
        service.key_file(ctx)
    key.unlink()
    with pytest.raises(PaasError, match="no backup key at .*umask 077"):
        service.key_file(ctx)
    inside = ctx.settings.data_dir / "backup.key"
    inside.write_text("x")
    inside.chmod(0o600)
    moved = dataclasses.replace(
        ctx, settings=dataclasses.replace(ctx.settings, extra={"PAAS_BACKUP_PASSWORD_FILE": str(inside)})
    )
    with pytest.raises(PaasError, match="in the data dir"):
        service.key_file(moved)


@pytest.mark.parametrize(
    "target",
    ["relative/dir", "-o=x", "/srv/a/../../etc", "/srv/back ups", "/srv/x\n", "ftp:host/x", "s3:", ""],
)
def test_bad_targets_are_refused(target: str, tmp_path: Path) -> None:
    with pytest.raises(PaasError, match="invalid backup target"):
        restic.check_target(target, tmp_path / "data")


def test_targets_in_or_around_the_data_dir_are_refused_and_others_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for bad in (str(data), str(data / "backups"), str(tmp_path)):
        with pytest.raises(PaasError, match="in the data dir"):
            restic.check_target(bad, data)
    assert restic.check_target(str(tmp_path / "elsewhere"), data) == str(tmp_path / "elsewhere")
    for remote in (
        "sftp:backup@host:/srv/paas",
        "s3:https://s3.example.com/bucket/paas",
        "rest:http://h:8000/",
    ):
        assert restic.check_target(remote, data) == remote
    assert restic.shown("rest:https://user:pw@host/x") == "rest:https://user:***@host/x"


def test_no_target_says_how_to_give_one(ctx: Context) -> None:
    with pytest.raises(PaasError, match="give --to/--from TARGET or set PAAS_BACKUP_TARGET"):
        service.create(ctx, None, BuildLog())
    with pytest.raises(PaasError, match="invalid backup id"):
        service.verify(ctx, "../../x", "/srv/backups", BuildLog())


# ---------------------------------------------------------------- admins only


def test_only_admins_reach_any_backup_rule(ctx: Context) -> None:
    nobody = ctx.for_actor("bob", is_admin=False)
    for call in (
        lambda: service.create(nobody, "/srv/b", BuildLog()),
        lambda: service.list_backups(nobody, "/srv/b"),
        lambda: service.verify(nobody, "latest", "/srv/b", BuildLog()),
        lambda: service.restore(nobody, "latest", "/srv/b", False, None, BuildLog()),
        lambda: service.restore(nobody, "latest", "/srv/b", False, "shop", BuildLog()),
        lambda: service.schedule(nobody, "0 3 * * *", 3, "/srv/b"),
        lambda: service.schedule(nobody, None, None, None),
    ):
        with pytest.raises(PermissionDenied, match="only an admin"):
            call()
    for argv in (["backup:list"], ["backup:create"], ["backup:restore", "latest", "--app", "shop"]):
        code, _, err = run(nobody, *argv)
        assert code == 1 and err.startswith("error: only an admin may "), err


# ---------------------------------------------------------------- schedules


def test_a_schedule_runs_once_per_tick_never_replays_and_says_when_it_failed(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[bool] = []
    outcome: dict = {"fail": None}
    finished = threading.Event()

    def fake_create(ctx_: Context, target: str | None, log_: BuildLog, scheduled: bool = False):  # type: ignore[no-untyped-def]
        ran.append(scheduled)
        try:
            if outcome["fail"]:
                raise PaasError(outcome["fail"])
            return service.Created("abcd1234", 1, 1, 1, 1, 0.1, str(target))
        finally:
            finished.set()

    monkeypatch.setattr(service, "create", fake_create)
    with pytest.raises(PaasError, match="invalid cron schedule"):
        service.schedule(ctx, "61 * * * *", None, str(tmp_path / "b"))
    with pytest.raises(PaasError, match="--keep must be"):
        service.schedule(ctx, "0 3 * * *", 0, str(tmp_path / "b"))
    set_at = datetime.now(UTC)
    service.schedule(ctx, "0 3 * * *", None, str(tmp_path / "b"))
    assert not service.reconcile(ctx, now=set_at)  # no tick since it was set
    tick = (set_at + timedelta(days=1)).replace(hour=3, minute=0, second=30)
    assert service.reconcile(ctx, now=tick)
    assert finished.wait(10)
    wait_until(lambda: "last_success" in service.load_schedule(ctx))
    assert not service.reconcile(ctx, now=tick + timedelta(seconds=20))  # the same tick: once
    assert service.load_schedule(ctx)["last_success"]["id"] == "abcd1234"
    finished.clear()
    outcome["fail"] = "the target is gone"
    assert service.reconcile(ctx, now=tick + timedelta(days=3))  # missed ticks collapse into one run
    assert finished.wait(10)
    wait_until(lambda: "last_failure" in service.load_schedule(ctx))
    line = service.schedule_line(service.load_schedule(ctx))
    assert line is not None and "FAILED" in line and "the target is gone" in line
    assert ran == [True, True]
    service.schedule(ctx, "off", None, None)
    assert service.load_schedule(ctx) == {}


def wait_until(predicate, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---------------------------------------------------------------- the store, whole and one app


def test_the_store_is_copied_whole_while_writers_go_on_and_written_back_live(tmp_path: Path) -> None:
    store, other = Store(tmp_path / "a.db"), Store(tmp_path / "a.db")
    store.create_app("shop")
    store.backup_to(tmp_path / "copy.db")
    later = store.create_app("later")
    assert check_copy(tmp_path / "copy.db") == latest_schema()
    other.restore_from(tmp_path / "copy.db")
    assert [a.name for a in store.list_apps()] == ["shop"]  # the other connection sees it at once
    assert store.create_app("new").id > later.id  # an id this store gave is not given again
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_older_store_is_migrated_and_a_newer_or_damaged_one_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript(_migrations()[0][1])  # a store of the first schema
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    assert check_copy(old) == 1
    assert connect(old).execute("PRAGMA user_version").fetchone()[0] == latest_schema()
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {latest_schema() + 1}")
    conn.close()
    with pytest.raises(PaasError, match="newer than this paas knows"):
        check_copy(newer)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(PaasError, match="cannot be read|damaged"):
        check_copy(garbage)


def test_one_app_is_copied_with_new_ids_and_users_matched_by_name(tmp_path: Path) -> None:
    src = Store(tmp_path / "src.db")
    alice = src.add_user("alice", "x", True, "2026-01-01T00:00:00Z")
    bob = src.add_user("bob", "x", False, "2026-01-01T00:00:00Z")
    src.create_app("filler")
    shop = src.create_app("shop", owner_id=alice.id)
    src.replace_config(shop.id, {"K": "v"})
    src.set_formation(shop.id, {"web": 2})
    src.replace_domains(shop.id, ["shop.example.com"])
    src.set_setting(shop.id, "storage_mounts", "[]")
    build = src.create_build(shop.id, "abc", "alice")
    release = src.create_release(shop.id, build, {"K": "v"}, {"web": 2}, "Deploy", "alice")
    src.set_release_status(release.id, "succeeded")
    src.set_grant(shop.id, bob.id, ("view",), "2026-01-01T00:00:00Z")
    src.backup_to(tmp_path / "copy.db")

    dst = Store(tmp_path / "dst.db")
    dst.create_app("other")
    gone = dst.create_app("more")
    dst.delete_app(gone.id)  # its id is never given again, not even to a copied app
    dst.add_user("bob", "x", False, "2026-01-01T00:00:00Z")  # alice is not on this platform
    copied = dst.copy_app_from(tmp_path / "copy.db", "shop")
    app = dst.get_app("shop")
    assert app is not None and app.id == copied.app_id > gone.id
    assert app.owner_id is None and any("alice" in s for s in copied.skipped)
    assert dst.get_config(app.id) == {"K": "v"} and dst.get_formation(app.id) == {"web": 2}
    assert dst.list_domains(app.id) == ["shop.example.com"]
    current = dst.current_release(app.id)
    assert current is not None and current.version == 1
    assert dst.get_build(current.build_id).commit_sha == "abc"  # type: ignore[union-attr]
    assert [g.user for g in dst.grants(app.id)] == ["bob"]
    with pytest.raises(PaasError, match="no app 'nope'"):
        dst.copy_app_from(tmp_path / "copy.db", "nope")


def test_a_restore_source_moves_paths_to_this_data_dir(tmp_path: Path) -> None:
    source = RestoreSource(tmp_path, Path("/var/lib/paas"), tmp_path / "dumps", {"shop": (3, 7)})
    assert source.relocate("/var/lib/paas/storage/x", Path("/srv/paas")) == "/srv/paas/storage/x"
    assert source.relocate("/var/lib/paasx/storage", Path("/srv/paas")) == "/var/lib/paasx/storage"
    assert source.includes("shop") and not source.includes("blog") and not source.whole


# ---------------------------------------------------------------- a restore onto another data dir


@needs_restic
def test_a_half_failed_restore_says_what_came_back_and_moves_paths(
    ctx: Context, tmp_path: Path, key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server A's backup onto server B (another data dir): the store, repos, certificates and
    storage come back, mounts follow the new data dir; one app's rebuild fails and the report
    (printed, exit 1, kept in last-restore.json) says so while the other app is back."""
    blog = ctx.store.create_app("blog")
    (ctx.settings.repos_dir / "blog.git").mkdir()
    folder = ctx.settings.storage_dir / "blog-files"
    folder.mkdir(parents=True)
    (folder / "note.txt").write_text("kept\n")
    mount = [{"host": str(folder), "container": "/app/storage", "read_only": False}]
    ctx.store.set_setting(blog.id, "storage_mounts", json.dumps(mount))
    for app in (ctx.store.get_app("shop"), blog):
        build = ctx.store.create_build(app.id, "c0ffee", "test")  # type: ignore[union-attr]
        release = ctx.store.create_release(app.id, build, {}, {"web": 1}, "Deploy", "test")  # type: ignore[union-attr]
        ctx.store.set_release_status(release.id, "succeeded")
    target = tmp_path / "backups"
    done = service.create(ctx, str(target), BuildLog())

    b = Context.open(dataclasses.replace(ctx.settings, data_dir=tmp_path / "b"), actor="host", is_admin=True)
    built: list[str] = []

    def rebuild(ctx_: Context, name: str, log_: BuildLog):  # type: ignore[no-untyped-def]
        built.append(name)
        if name == "blog":
            raise PaasError("the build failed: no space left")
        return None

    monkeypatch.setattr(service.push, "redeploy_current", rebuild)
    code, out, err = run(b, "backup:restore", done.id, "--from", str(target))
    assert code == 1, out + err
    assert "FAILED  app blog: the build failed: no space left" in out, out
    assert "ok      app shop" in out and "ok      store: 2 app(s)" in out, out
    assert err.startswith("error: restore incomplete: 1 part(s) did not come back: app blog"), err
    assert sorted(built) == ["blog", "shop"]
    report = json.loads((b.settings.plugins_dir / "backup" / "last-restore.json").read_text())
    assert [o["part"] for o in report["outcomes"] if not o["ok"]] == ["app blog"]
    # the store, the files, and the mount moved to b's data dir
    shop = b.store.get_app("shop")
    assert shop is not None and b.store.get_config(shop.id) == {"SECRET": SECRET}
    assert (b.settings.repos_dir / "shop.git" / "HEAD").is_file()
    assert (b.settings.plugins_dir / "certs" / f"app-{shop.id}" / "server.key").read_text().endswith(SECRET)
    moved = json.loads(b.store.get_setting(b.store.get_app("blog").id, "storage_mounts"))  # type: ignore[union-attr]
    assert moved[0]["host"] == str(b.settings.storage_dir / "blog-files")
    assert (b.settings.storage_dir / "blog-files" / "note.txt").read_text() == "kept\n"
    assert not list(service.names.backup_scratch_parent(b.settings).iterdir())


def test_the_plugins_settings_come_from_the_environment_through_settings_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PAAS_BACKUP_* and PAAS_ACME_* are the plugins' own (issue 28): the core's Settings only
    carries every PAAS_* variable for them, and an empty one counts as unset."""
    from paas_plugins.backup import settings as backup_settings
    from paas_plugins.certs import settings as certs_settings

    monkeypatch.setenv("PAAS_BACKUP_TARGET", "/srv/backups")
    monkeypatch.setenv("PAAS_ACME_EMAIL", "")
    settings = Settings.from_env()
    assert backup_settings.backup(settings).target == "/srv/backups"
    assert str(backup_settings.backup(settings).password_file) == "/etc/paas/backup.key"
    assert certs_settings.acme(settings).email is None
    assert certs_settings.acme(settings).directory == certs_settings.LETSENCRYPT_DIRECTORY
    assert not hasattr(settings, "backup_target") and not hasattr(settings, "acme_directory")
