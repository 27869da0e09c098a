"""Backups of the whole platform and restores onto a new server: the rules (commands only parse
and render). Admins only, checked here at every entry.

A backup is one restic snapshot of the data dir's state, taken in this order so that what the
store names is always in the files read after it: the store (SQLite's online backup API), then
each plugin's dumps (`paas_backup_dump`: Postgres, Redis), then the files (app repos, plugin
state such as certificates and the ACME account, storage folders, service records, the SSH host
key, the dashboard's session key). A manifest lists the apps and the sha256 of the store's copy
and of every dump. restic encrypts everything with the key in PAAS_BACKUP_PASSWORD_FILE.

A restore lays the snapshot out in a scratch folder (restic verifies each file as it writes it),
checks the manifest's checksums and the store's integrity, and only then changes anything: the
store is written back whole, the files moved in, the plugins load their dumps
(`paas_backup_restore`), and every app is built again from its repo at its release's commit and
deployed. What came back and what did not is reported (and kept in last-restore.json).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from croniter import croniter

from paas.core import names
from paas.plugin_api import BuildLog, Conflict, Context, PaasError, RestoreSource, access
from paas.services import apps as apps_service
from paas.services import push, routing
from paas.services.locks import AppLock
from paas.store.snapshot import check_copy, schema_of

from . import settings as plugin_settings
from .restic import SNAPSHOT_RE, Restic, Snapshot, check_target, shown

log = logging.getLogger("paas.backup")

FORMAT = 1
MANIFEST = "manifest.json"
STORE_COPY = "paas.db"
SCHEDULE_FILE = "schedule.json"
REPORT_FILE = "last-restore.json"
KEY_HELP = "mkdir -p {dir} && (umask 077; head -c 32 /dev/urandom | base64 > {path})"


def _require_admin(ctx: Context, operation: str) -> None:
    access.require_admin(ctx, operation)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- the key and the target


def key_file(ctx: Context) -> Path:
    """The file holding restic's repository password: it must exist, be root's alone and live
    outside the data dir (a key on the disk it guards is lost with it)."""
    path = plugin_settings.backup(ctx.settings).password_file
    real = os.path.realpath(path)
    data = os.path.realpath(ctx.settings.data_dir)
    if real.startswith(data + os.sep):
        raise PaasError(
            f"the backup key {path} is in the data dir: keep it elsewhere (PAAS_BACKUP_PASSWORD_FILE)"
        )
    if not path.is_file():
        raise PaasError(
            f"no backup key at {path}: make one with `{KEY_HELP.format(dir=path.parent, path=path)}` and "
            "keep a copy off this machine: without it no backup can be read (PAAS_BACKUP_PASSWORD_FILE "
            "moves it)"
        )
    if path.stat().st_mode & 0o077:
        raise PaasError(f"the backup key {path} is readable by others: chmod 600 {path}")
    if not path.read_text().strip():
        raise PaasError(f"the backup key {path} is empty")
    return path


def engine(ctx: Context, target: str | None) -> Restic:
    chosen = target or plugin_settings.backup(ctx.settings).target
    if not chosen:
        raise PaasError("no backup target: give --to/--from TARGET or set PAAS_BACKUP_TARGET")
    repository = check_target(chosen, ctx.settings.data_dir)
    return Restic(repository, key_file(ctx), names.backup_cache_dir(ctx.settings))


def check_id(backup_id: str) -> str:
    if backup_id != "latest" and not SNAPSHOT_RE.fullmatch(backup_id or ""):
        raise PaasError(f"invalid backup id {backup_id!r}: an id from backup:list, or latest")
    return backup_id


@contextmanager
def _one_at_a_time(ctx: Context) -> Iterator[None]:
    """One backup or restore at a time on this server (commands and the server are processes)."""
    ctx.settings.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.settings.locks_dir / "backup.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("a backup or restore is running on this server; try again when it ends") from None
        yield


# ---------------------------------------------------------------- backup:create


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _inside(path: Path, root: Path) -> str | None:
    """`path` relative to `root`, or None when it is not under it."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return None
    return str(rel) if str(rel) != "." else None


def _paths(ctx: Context, log_: BuildLog) -> list[str]:
    """What the snapshot reads, relative to the data dir: ours, then what plugins name."""
    s = ctx.settings
    wanted = [
        names.BACKUP_STAGING,
        s.repos_dir,
        s.plugins_dir,
        s.host_key_path,
        s.web_secret_path,
        s.data_dir / "buildpacks",
    ]
    for name, call in ctx.plugins.each("paas_backup_paths"):
        try:
            wanted.extend(Path(p) for p in call(ctx=ctx) or [])
        except Exception as exc:
            raise PaasError(f"plugin {name} could not name its files: {exc}") from exc
    out: list[str] = []
    for p in wanted:
        rel = str(p) if isinstance(p, str) else _inside(p, s.data_dir)
        if rel is None:
            log_.detail(f"skipped {p}: not in the data dir")
            continue
        if (s.data_dir / rel).exists() and rel not in out:
            out.append(rel)
    return out


def _manifest(ctx: Context, staging: Path, paths: list[str]) -> dict:
    apps = []
    for app in ctx.store.list_apps():
        release = ctx.store.current_release(app.id)
        build = ctx.store.get_build(release.build_id) if release and release.build_id else None
        apps.append(
            {
                "name": app.name,
                "id": app.id,
                "release": release.version if release else None,
                "commit": build.commit_sha if build else None,
                "formation": ctx.store.get_formation(app.id),
                "domains": ctx.store.list_domains(app.id),
                "stopped": bool(app.stopped),
            }
        )
    checksums = {
        str(p.relative_to(ctx.settings.data_dir)): _sha256(p)
        for p in sorted(staging.rglob("*"))
        if p.is_file() and not p.name.endswith(".sha256")
    }
    return {
        "format": FORMAT,
        "paas": metadata.version("paas"),
        "created_at": now_iso(),
        "hostname": socket.gethostname(),
        "data_dir": str(ctx.settings.data_dir),
        "schema": schema_of(staging / STORE_COPY),
        "apps": apps,
        "users": len(ctx.store.list_users()),
        "paths": paths,
        "checksums": checksums,
    }


@dataclass
class Created:
    id: str
    apps: int
    files: int
    bytes_read: int
    bytes_added: int
    seconds: float
    target: str


def create(ctx: Context, target: str | None, log_: BuildLog, scheduled: bool = False) -> Created:
    """One snapshot of the whole platform (see the module's docstring for what and in which order)."""
    _require_admin(ctx, "backup:create")
    started = time.monotonic()
    staging = names.backup_staging_dir(ctx.settings)
    try:
        repo = engine(ctx, target)
        with _one_at_a_time(ctx):
            if not repo.exists():
                log_.step(f"Creating the backup repository at {shown(repo.repository)}")
                repo.init()
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o700, parents=True)
            log_.step("Copying the store (SQLite online backup)")
            ctx.store.backup_to(staging / STORE_COPY)
            dumps = staging / names.BACKUP_DUMPS
            for name, call in ctx.plugins.each("paas_backup_dump"):
                log_.step(f"Dumping the data of {name}")
                folder = dumps / name
                folder.mkdir(parents=True, mode=0o700)
                try:
                    call(ctx=ctx, folder=folder, log=log_)
                except Exception as exc:
                    raise PaasError(f"{name}: {exc}") from exc
            paths = _paths(ctx, log_)
            manifest = _manifest(ctx, staging, paths)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            log_.step(f"Sending it to {shown(repo.repository)} (encrypted; only what changed is sent)")
            tags = [names.BACKUP_TAG, names.BACKUP_SCHEDULED_TAG if scheduled else "manual"]
            snapshot, summary = repo.backup(paths, ctx.settings.data_dir, tags, log_.detail)
    except Exception as exc:  # said in events too: a scheduled backup has nobody watching
        ctx.store.add_event(None, ctx.actor or "paas", "backup:failed", str(exc)[:300])
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    done = Created(
        id=snapshot[:8],
        apps=len(manifest["apps"]),
        files=int(summary.get("total_files_processed", 0)),
        bytes_read=int(summary.get("total_bytes_processed", 0)),
        bytes_added=int(summary.get("data_added", 0)),
        seconds=round(time.monotonic() - started, 1),
        target=shown(repo.repository),
    )
    ctx.store.add_event(None, ctx.actor or "paas", "backup:create", f"{done.id} to {done.target}")
    return done


# ---------------------------------------------------------------- backup:list, backup:verify


def list_backups(ctx: Context, target: str | None) -> list[Snapshot]:
    _require_admin(ctx, "backup:list")
    return engine(ctx, target).snapshots(names.BACKUP_TAG)


def _check_layout(root: Path) -> dict:
    """A restored snapshot as a backup of ours: its manifest, every checksum in it, the store's
    integrity (its copy is then migrated to this code's schema)."""
    staging = root / names.BACKUP_STAGING
    try:
        manifest = json.loads((staging / MANIFEST).read_text())
    except (OSError, ValueError):
        raise PaasError("this snapshot is not a paas backup (no readable manifest)") from None
    if manifest.get("format") != FORMAT:
        raise PaasError(f"backup format {manifest.get('format')!r} is not one this paas reads ({FORMAT})")
    bad = []
    for rel, wanted in sorted(manifest.get("checksums", {}).items()):
        path = root / rel
        if ".." in Path(rel).parts or not path.is_file() or _sha256(path) != wanted:
            bad.append(rel.removeprefix(names.BACKUP_STAGING + "/"))
    if bad:
        raise PaasError(f"the backup is damaged: {', '.join(bad[:5])} do not match their checksums")
    check_copy(staging / STORE_COPY)
    return manifest


def _scratch(ctx: Context) -> Path:
    """A new scratch folder (called under `_one_at_a_time`: any other left there is from a
    restore or verify that was killed, and goes)."""
    parent = names.backup_scratch_parent(ctx.settings)
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(tempfile.mkdtemp(dir=parent, prefix="restore-"))


def _fetch(ctx: Context, repo: Restic, backup_id: str, scratch: Path, log_: BuildLog) -> dict:
    log_.step(f"Checking the repository at {shown(repo.repository)} (restic check)")
    repo.check()
    log_.step(f"Restoring backup {backup_id} into a scratch folder, verifying every file")
    repo.restore(backup_id, scratch)
    manifest = _check_layout(scratch)
    log_.detail(f"{len(manifest.get('checksums', {}))} checksums match; the store is intact")
    return manifest


def verify(ctx: Context, backup_id: str, target: str | None, log_: BuildLog) -> dict:
    """restic's check, then the snapshot restored into a scratch folder and every file checked;
    the running platform is not touched."""
    _require_admin(ctx, "backup:verify")
    check_id(backup_id)
    repo = engine(ctx, target)
    with _one_at_a_time(ctx):
        scratch = _scratch(ctx)
        try:
            try:
                manifest = _fetch(ctx, repo, backup_id, scratch, log_)
            except PaasError as exc:
                detail = f"{backup_id}: {exc}"[:300]
                ctx.store.add_event(None, ctx.actor or "paas", "backup:verify-failed", detail)
                raise
            size = sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    ctx.store.add_event(None, ctx.actor or "paas", "backup:verify", backup_id)
    return {
        "id": backup_id,
        "created_at": manifest["created_at"],
        "hostname": manifest["hostname"],
        "apps": [a["name"] for a in manifest["apps"]],
        "bytes": size,
        "checksums": len(manifest.get("checksums", {})),
    }


# ---------------------------------------------------------------- backup:restore


@dataclass
class Outcome:
    part: str
    ok: bool
    detail: str


@dataclass
class Report:
    backup: str
    started_at: str = field(default_factory=now_iso)
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self, part: str, detail: str = "") -> None:
        self.outcomes.append(Outcome(part, True, detail))

    def fail(self, part: str, detail: str) -> None:
        self.outcomes.append(Outcome(part, False, detail))

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def _merge(src: Path, dst: Path) -> None:
    """Move `src` to `dst`; folders are merged (what is in the backup wins, what only this server
    has stays)."""
    if src.is_dir() and not src.is_symlink() and dst.is_dir() and not dst.is_symlink():
        for child in src.iterdir():
            _merge(child, dst / child.name)
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def _save_report(ctx: Context, report: Report) -> None:
    folder = names.backup_state_dir(ctx.settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))


def restore(
    ctx: Context,
    backup_id: str,
    target: str | None,
    force: bool,
    app: str | None,
    log_: BuildLog,
) -> Report:
    """The whole platform from a backup (refused over one with apps unless `force`, which
    destroys them first), or with `app` one app and its services into this running platform."""
    _require_admin(ctx, "backup:restore")
    check_id(backup_id)
    repo = engine(ctx, target)
    if app is None:
        existing = [a.name for a in ctx.store.list_apps()]
        if existing and not force:
            listed = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
            raise Conflict(
                f"this platform has {len(existing)} app(s) ({listed}): a restore replaces the whole "
                "platform; run it on a new server, add --force to destroy them first, or restore one app "
                "with --app"
            )
    elif ctx.store.get_app(app) is not None and not force:
        raise Conflict(f"{app} exists here: add --force to destroy it and restore the backup's")
    report = Report(backup_id)
    started = time.monotonic()
    with _one_at_a_time(ctx):
        scratch = _scratch(ctx)
        try:
            try:
                manifest = _fetch(ctx, repo, backup_id, scratch, log_)
            except PaasError as exc:
                raise PaasError(f"{exc}; nothing was restored, nothing here changed") from None
            where = f"{manifest['hostname']} at {manifest['created_at']}"
            report.ok("backup", f"{backup_id} of {where}: checksums match")
            if app is None:
                _restore_all(ctx, manifest, scratch, force, report, log_)
            else:
                _restore_app(ctx, manifest, scratch, app, force, report, log_)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            report.seconds = round(time.monotonic() - started, 1)
            _save_report(ctx, report)
    came = sum(1 for o in report.outcomes if o.ok)
    detail = f"{backup_id}: {came} part(s) back, {len(report.failed)} failed"
    detail += f" (--app {app})" if app else ""
    ctx.store.add_event(app, ctx.actor or "paas", "backup:restore", detail)
    return report


def _source(
    ctx: Context, manifest: dict, scratch: Path, apps: dict[str, tuple[int, int]] | None
) -> RestoreSource:
    return RestoreSource(
        root=scratch,
        data_dir=Path(manifest["data_dir"]),
        dumps=scratch / names.BACKUP_STAGING / names.BACKUP_DUMPS,
        apps=apps,
    )


def _plugins_restore(ctx: Context, source: RestoreSource, report: Report, log_: BuildLog) -> None:
    for name, call in ctx.plugins.each("paas_backup_restore"):
        try:
            said = call(ctx=ctx, source=source, log=log_)
            report.ok(f"plugin {name}", said if isinstance(said, str) else "done")
        except Exception as exc:
            log.warning("backup restore: plugin %s: %s", name, exc)
            log_.error(f"{name}: {exc}")
            report.fail(f"plugin {name}", str(exc)[:500])


def _rebuild(ctx: Context, entry: dict, report: Report, log_: BuildLog, counter: str) -> None:
    name = entry["name"]
    if entry.get("release") is None or not entry.get("commit"):
        report.ok(f"app {name}", "restored (it had never been deployed)")
        return
    commit, version = entry["commit"][:7], entry["release"]
    log_.step(f"Building {name} {counter} from its repo at {commit} (release v{version})")
    started = time.monotonic()
    try:
        release = push.redeploy_current(ctx, name, log_)
    except Exception as exc:
        log.warning("backup restore: app %s: %s", name, exc)
        log_.error(f"{name} did not come back: {exc}")
        report.fail(f"app {name}", str(exc)[:500])
        return
    took = time.monotonic() - started
    state = "built (stopped, as it was)" if entry.get("stopped") else "built and deployed"
    version = release.version if release else entry["release"]
    report.ok(f"app {name}", f"v{version} at {entry['commit'][:7]} {state} in {took:.1f} s")


def _restore_all(
    ctx: Context, manifest: dict, scratch: Path, force: bool, report: Report, log_: BuildLog
) -> None:
    if force:
        for existing in ctx.store.list_apps():
            log_.step(f"Destroying {existing.name} (--force)")
            apps_service.destroy_app(ctx, existing.name, existing.name, log_)
            report.ok(f"destroyed {existing.name}", "--force")
    entries = manifest["apps"]
    # Each app's lock is held from before its records come back until it is deployed: the
    # server's reconcile pass leaves it alone meanwhile (it has no image yet).
    locks = [AppLock(ctx, e["name"]) for e in entries]
    try:
        for lock in locks:
            lock.acquire()
        log_.step("Restoring the store: apps, releases, config, users, keys, tokens, permissions, domains")
        ctx.store.restore_from(scratch / names.BACKUP_STAGING / STORE_COPY)
        report.ok("store", f"{len(entries)} app(s), {manifest.get('users', '?')} user(s)")
        log_.step("Restoring files: app repos, certificates, storage, plugin state, SSH host key")
        for rel in manifest["paths"]:
            if rel == names.BACKUP_STAGING or ".." in Path(rel).parts or Path(rel).is_absolute():
                continue
            src = scratch / rel
            if src.exists() or src.is_symlink():
                _merge(src, ctx.settings.data_dir / rel)
        tops = dict.fromkeys(Path(p).parts[0] for p in manifest["paths"] if p != names.BACKUP_STAGING)
        report.ok("files", ", ".join(tops))
        _plugins_restore(ctx, _source(ctx, manifest, scratch, None), report, log_)
        for i, (entry, lock) in enumerate(zip(entries, locks, strict=True), 1):
            try:
                _rebuild(ctx, entry, report, log_, f"({i}/{len(entries)})")
            finally:
                lock.release()
        try:
            routing.sync_dashboard_route(ctx)
        except PaasError as exc:
            report.fail("dashboard route", str(exc))
    finally:
        for lock in locks:
            lock.release()


def _restore_app(
    ctx: Context, manifest: dict, scratch: Path, app: str, force: bool, report: Report, log_: BuildLog
) -> None:
    entry = next((e for e in manifest["apps"] if e["name"] == app), None)
    if entry is None:
        raise PaasError(f"backup {report.backup} has no app {app!r}")
    if ctx.store.get_app(app) is not None:
        log_.step(f"Destroying {app} (--force)")
        apps_service.destroy_app(ctx, app, app, log_)
        report.ok(f"destroyed {app}", "--force")
    lock = AppLock(ctx, app)
    lock.acquire()
    try:
        log_.step(f"Restoring {app}'s records: releases, config, domains, permissions, settings")
        copied = ctx.store.copy_app_from(scratch / names.BACKUP_STAGING / STORE_COPY, app)
        rows = ", ".join(f"{n} {t}" for t, n in sorted(copied.rows.items()))
        report.ok("store", rows + ("; not copied: " + "; ".join(copied.skipped) if copied.skipped else ""))
        repo = scratch / names.repo_path(ctx.settings, app).relative_to(ctx.settings.data_dir)
        if repo.is_dir():
            _merge(repo, names.repo_path(ctx.settings, app))
            report.ok("repo", f"{app}.git")
        else:
            report.fail("repo", f"the backup has no repo of {app}")
        source = _source(ctx, manifest, scratch, {app: (entry["id"], copied.app_id)})
        source = dataclasses.replace(
            source, users=ctx.store.users_from(scratch / names.BACKUP_STAGING / STORE_COPY)
        )
        _plugins_restore(ctx, source, report, log_)
        _rebuild(ctx, entry, report, log_, "(1/1)")
    finally:
        lock.release()


def last_report(ctx: Context) -> dict | None:
    try:
        return json.loads((names.backup_state_dir(ctx.settings) / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- backup:schedule


def load_schedule(ctx: Context) -> dict:
    try:
        return json.loads((names.backup_state_dir(ctx.settings) / SCHEDULE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _save_schedule(ctx: Context, data: dict) -> None:
    folder = names.backup_state_dir(ctx.settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = folder / f".{SCHEDULE_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, folder / SCHEDULE_FILE)


def schedule(ctx: Context, cron: str | None, keep: int | None, target: str | None) -> dict:
    """Set (a cron expression in UTC, `--keep N` scheduled backups kept) or stop (`off`) the
    schedule; without `cron`, show it. Checked now: a schedule that cannot run is refused."""
    _require_admin(ctx, "backup:schedule")
    current = load_schedule(ctx)
    if cron is None:
        return current
    cron = cron.strip()
    if cron == "off":
        _save_schedule(ctx, {})
        ctx.store.add_event(None, ctx.actor or "paas", "backup:schedule", "off")
        return {}
    if not croniter.is_valid(cron) or "\n" in cron or len(cron.split()) != 5:
        raise PaasError(f'invalid cron schedule {cron!r} (five fields in UTC, e.g. "0 3 * * *", or off)')
    if keep is not None and not 1 <= keep <= 1000:
        raise PaasError("--keep must be between 1 and 1000")
    chosen = target or plugin_settings.backup(ctx.settings).target
    engine(ctx, chosen)  # the target and the key are there now
    data = {"schedule": cron, "keep": keep, "target": chosen, "last_tick": now_iso()}
    for k in ("last_success", "last_failure"):
        if k in current:
            data[k] = current[k]
    _save_schedule(ctx, data)
    ctx.store.add_event(None, ctx.actor or "paas", "backup:schedule", f"{cron} keep {keep or 'all'}")
    return data


_running = threading.Lock()


def reconcile(ctx: Context, now: datetime | None = None) -> bool:
    """From `paas server`'s reconcile pass: start the scheduled backup when its tick has come
    (once per tick, never a replay of ticks missed while no server ran). True when started."""
    data = load_schedule(ctx)
    if not data.get("schedule"):
        return False
    now = now or datetime.now(UTC)
    last = datetime.fromisoformat(data.get("last_tick") or now_iso())
    due = croniter(data["schedule"], now).get_prev(datetime)
    if due <= last or not _running.acquire(blocking=False):
        return False
    data["last_tick"] = now.isoformat(timespec="seconds")  # before it runs: at most once per tick
    _save_schedule(ctx, data)
    threading.Thread(target=_run_scheduled, args=(ctx, data), daemon=True, name="backup-scheduled").start()
    return True


def _run_scheduled(ctx: Context, data: dict) -> None:
    result: dict = {}
    try:
        done = create(ctx, data.get("target"), BuildLog(), scheduled=True)  # records its own failure
        result["last_success"] = {"at": now_iso(), "id": done.id, "seconds": done.seconds}
        log.info("scheduled backup %s done in %.1f s", done.id, done.seconds)
        if data.get("keep"):
            try:
                engine(ctx, data.get("target")).forget(names.BACKUP_SCHEDULED_TAG, int(data["keep"]))
            except PaasError as exc:
                ctx.store.add_event(None, "paas", "backup:failed", f"pruning: {exc}"[:300])
                result["last_failure"] = {"at": now_iso(), "error": f"pruning: {exc}"[:500]}
    except Exception as exc:  # said in events, the server log and backup:list / backup:schedule
        log.warning("scheduled backup failed: %s", exc)
        result["last_failure"] = {"at": now_iso(), "error": str(exc)[:500]}
    finally:
        _running.release()
    fresh = load_schedule(ctx)
    if fresh.get("schedule"):
        if "last_failure" not in result:
            fresh.pop("last_failure", None)
        fresh.update(result)
        _save_schedule(ctx, fresh)


def schedule_line(data: dict) -> str | None:
    """The failure line of the last scheduled backup, if it failed."""
    failure = data.get("last_failure")
    if failure:
        return f"the last scheduled backup FAILED at {failure['at']}: {failure['error']}"
    return None
