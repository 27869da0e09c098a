"""Certificates of apps and of the dashboard: the rules (commands only parse and render).

A "subject" is an app (`manage` on it changes its certificate, `view` reads its report), or the
dashboard under its reserved name `paas` (admins only). Its
certificate and key are files in its own folder under `$PAAS_DATA_DIR/plugins/certs/` (folders
0700, files 0600: nginx's master reads them as root); the folder is named by the app's id, so a
rename keeps it. Flags (redirect, HSTS, ACME and its retry state) are per-app settings in the
store, and for the dashboard a small JSON file in its folder.

Every change is checked before anything is written, then written beside the old files, routed
(nginx -t), and only then moved into place; a refused route puts the old files back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from paas.plugin_api import (
    App,
    BuildLog,
    Context,
    PaasError,
    RestoreSource,
    RouteExtras,
    RouteTls,
    access,
    app_lock,
)
from paas.services import routing
from paas.services.lookup import hostnames, list_apps

from . import pem

DASHBOARD = "paas"  # the reserved app name stands for the dashboard (`paas.<domain>`)
CERT_FILE, KEY_FILE = "server.crt", "server.key"
# per-app settings
S_SOURCE = "certs.source"  # manual | self-signed | letsencrypt
S_REDIRECT = "certs.redirect"  # "off" keeps plain HTTP
S_HSTS = "certs.hsts"  # "on"
S_ACME = "letsencrypt"  # "on"
S_ACME_NEXT = "letsencrypt.next_try"  # epoch seconds: no attempt before
S_ACME_FAILS = "letsencrypt.failures"
S_ACME_ERROR = "letsencrypt.last_error"


@dataclass(frozen=True)
class Subject:
    """An app or the dashboard, with where its files are."""

    name: str
    app: App | None
    folder: Path
    hostnames: tuple[str, ...]

    @property
    def is_dashboard(self) -> bool:
        return self.app is None

    @property
    def cert_path(self) -> Path:
        return self.folder / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.folder / KEY_FILE

    @property
    def event_app(self) -> str | None:
        return self.app.name if self.app else None


def certs_root(ctx: Context) -> Path:
    return ctx.settings.plugins_dir / "certs"


def _folder(ctx: Context, app: App | None) -> Path:
    return certs_root(ctx) / (f"app-{app.id}" if app is not None else "dashboard")


def app_subject(ctx: Context, app: App) -> Subject:
    return Subject(app.name, app, _folder(ctx, app), tuple(hostnames(ctx, app.name)))


def subject(ctx: Context, name: str, operation: str) -> Subject:
    """The app named `name`, if the actor may do `operation` on it (the permission table), or the
    dashboard for `paas` (admins only)."""
    if name == DASHBOARD:
        access.require_admin(ctx, operation, f"run {operation} for the dashboard")
        return dashboard_subject(ctx)
    return app_subject(ctx, access.authorize(ctx, name, operation))


def dashboard_subject(ctx: Context) -> Subject:
    return Subject(DASHBOARD, None, _folder(ctx, None), (ctx.settings.dashboard_host,))


def all_subjects(ctx: Context, among: set[int] | None = None) -> list[Subject]:
    """The apps the actor may view (those of them whose ids are `among`, if given), and for
    admins the dashboard."""
    out = [app_subject(ctx, a) for a in list_apps(ctx) if among is None or a.id in among]
    if access.is_admin(ctx):
        out.append(dashboard_subject(ctx))
    return out


# flags
def _dash_state(s: Subject) -> dict[str, str]:
    try:
        return json.loads((s.folder / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def get(ctx: Context, s: Subject, key: str) -> str | None:
    if s.app is not None:
        return ctx.store.get_setting(s.app.id, key)
    return _dash_state(s).get(key)


def put(ctx: Context, s: Subject, key: str, value: str | None) -> None:
    if s.app is not None:
        ctx.store.set_setting(s.app.id, key, value)
        return
    state = _dash_state(s)
    if value is None:
        state.pop(key, None)
    else:
        state[key] = value
    _ensure_folder(s.folder)
    _write_private(s.folder / "state.json", json.dumps(state).encode())


# files
def _ensure_folder(folder: Path) -> None:
    for d in (folder.parent, folder):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    """Written 0600 from the start (never readable by anyone else, not even for a moment)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def has_cert(s: Subject) -> bool:
    return s.cert_path.is_file() and s.key_path.is_file()


def current_info(s: Subject) -> pem.CertInfo | None:
    if not has_cert(s):
        return None
    try:
        return pem.read_info(s.cert_path.read_bytes())
    except PaasError:
        return None


def route_tls(ctx: Context, s: Subject) -> RouteTls | None:
    """What the router needs to serve the subject's certificate."""
    info = current_info(s)
    if info is None:
        return None
    return RouteTls(
        str(s.cert_path),
        str(s.key_path),
        hostnames=info.sans,
        redirect=get(ctx, s, S_REDIRECT) != "off",
        hsts=get(ctx, s, S_HSTS) == "on",
        stapling=info.ocsp and not info.self_signed,
        fingerprint=info.fingerprint,
    )


def acme_root(ctx: Context) -> Path:
    """Where HTTP-01 answers are (nginx's workers read it: world-readable, no secrets)."""
    return ctx.settings.nginx_dir / "acme"


def parent_tls(ctx: Context, s: Subject) -> RouteTls | None:
    """A review app without a certificate of its own is served with its parent's when that one
    covers the review app's own `<name>.<domain>` (a wildcard certificate): read where the
    parent keeps it, so a renewal of the parent's serves both."""
    if s.app is None or s.app.parent_id is None or has_cert(s):
        return None
    parent = ctx.store.get_app_by_id(s.app.parent_id)
    if parent is None:
        return None
    tls = route_tls(ctx, app_subject(ctx, parent))
    info = current_info(app_subject(ctx, parent))
    return tls if tls is not None and info is not None and info.covers(s.hostnames[0]) else None


def nginx_extras(ctx: Context, s: Subject, extras: RouteExtras) -> None:
    extras.set_tls(route_tls(ctx, s) or parent_tls(ctx, s))
    if get(ctx, s, S_ACME) == "on":
        extras.set_acme_root(str(acme_root(ctx)))


@contextmanager
def _locked(ctx: Context, s: Subject) -> Iterator[None]:
    if s.app is None:
        yield
        return
    with app_lock(ctx, s.app.name):
        yield


def sync(ctx: Context, s: Subject) -> None:
    """Re-render the subject's route (the app's, or the dashboard's), and its review apps' that
    have no certificate of their own: they are served with the parent's when it covers them
    (parent_tls), so a parent's certificate added, replaced or removed changes theirs too."""
    if s.app is None:
        routing.sync_dashboard_route(ctx)
        return
    routing.sync_app_route(ctx, s.app.name)
    for child in ctx.store.list_apps():
        if child.parent_id == s.app.id and not has_cert(app_subject(ctx, child)):
            routing.sync_app_route(ctx, child.name)


def install(ctx: Context, s: Subject, pair: pem.Pair, source: str) -> None:
    """Put a checked pair in place and route it; on a refused route the old pair comes back."""
    _ensure_folder(s.folder)
    with _locked(ctx, s):
        backup = s.folder / "previous"
        had = has_cert(s)
        if had:
            backup.mkdir(mode=0o700, exist_ok=True)
            shutil.copy2(s.cert_path, backup / CERT_FILE)
            shutil.copy2(s.key_path, backup / KEY_FILE)
        old_source = get(ctx, s, S_SOURCE)
        _write_private(s.key_path, pair.key_pem)
        _write_private(s.cert_path, pair.cert_pem)
        put(ctx, s, S_SOURCE, source)
        try:
            sync(ctx, s)
        except Exception:
            if had:
                os.replace(backup / KEY_FILE, s.key_path)
                os.replace(backup / CERT_FILE, s.cert_path)
            else:
                s.key_path.unlink(missing_ok=True)
                s.cert_path.unlink(missing_ok=True)
            put(ctx, s, S_SOURCE, old_source)
            raise
        finally:
            shutil.rmtree(backup, ignore_errors=True)


def add(ctx: Context, name: str, cert: bytes, key: bytes, replace: bool) -> tuple[Subject, pem.CertInfo]:
    """`certs:add` (replace=False: refused when one is there) and `certs:update`."""
    s = subject(ctx, name, "certs:update" if replace else "certs:add")
    pair = pem.check_pair(cert, key)
    if has_cert(s) and not replace:
        raise PaasError(f"{name} has a certificate already; use certs:update to replace it")
    if not has_cert(s) and replace:
        raise PaasError(f"{name} has no certificate; use certs:add")
    install(ctx, s, pair, "manual")
    action = "certs:update" if replace else "certs:add"
    ctx.store.add_event(s.event_app, ctx.actor, action, pair.info.fingerprint)
    return s, pair.info


def generate(ctx: Context, name: str) -> tuple[Subject, pem.CertInfo]:
    """A self-signed certificate for the subject's names (refused over one that is not)."""
    s = subject(ctx, name, "certs:generate")
    if has_cert(s) and get(ctx, s, S_SOURCE) != "self-signed":
        raise PaasError(f"{name} has a certificate already; certs:remove it first")
    pair = pem.self_signed(list(s.hostnames))
    install(ctx, s, pair, "self-signed")
    ctx.store.add_event(s.event_app, ctx.actor, "certs:generate", pair.info.fingerprint)
    return s, pair.info


def remove(ctx: Context, name: str) -> None:
    s = subject(ctx, name, "certs:remove")
    if not has_cert(s):
        raise PaasError(f"{name} has no certificate")
    if get(ctx, s, S_ACME) == "on":
        raise PaasError(f"{name} gets its certificate from ACME; letsencrypt:disable it first")
    remove_files(ctx, s)
    ctx.store.add_event(s.event_app, ctx.actor, "certs:remove", "")


def remove_files(ctx: Context, s: Subject) -> None:
    """Take the certificate down (route first, then the files: nginx never points at nothing)."""
    with _locked(ctx, s):
        hidden = s.folder / "removed"
        hidden.mkdir(mode=0o700, exist_ok=True)
        os.replace(s.cert_path, hidden / CERT_FILE)
        os.replace(s.key_path, hidden / KEY_FILE)
        try:
            sync(ctx, s)
        except Exception:
            os.replace(hidden / CERT_FILE, s.cert_path)
            os.replace(hidden / KEY_FILE, s.key_path)
            raise
        finally:
            shutil.rmtree(hidden, ignore_errors=True)
        put(ctx, s, S_SOURCE, None)


def set_flag(ctx: Context, name: str, key: str, on: bool) -> Subject:
    """`certs:redirect` and `certs:hsts`: stored, then routed (put back if nginx refuses)."""
    s = subject(ctx, name, {S_REDIRECT: "certs:redirect", S_HSTS: "certs:hsts"}[key])
    old = get(ctx, s, key)
    value = {S_REDIRECT: None if on else "off", S_HSTS: "on" if on else None}[key]
    with _locked(ctx, s):
        put(ctx, s, key, value)
        try:
            sync(ctx, s)
        except Exception:
            put(ctx, s, key, old)
            raise
    ctx.store.add_event(s.event_app, ctx.actor, key.replace(".", ":"), "on" if on else "off")
    return s


@dataclass(frozen=True)
class Report:
    name: str
    info: pem.CertInfo | None
    source: str | None
    hostnames: tuple[str, ...]
    redirect: bool
    hsts: bool
    acme: bool
    acme_error: str | None
    acme_next_try: float | None

    @property
    def covered(self) -> list[str]:
        return [h for h in self.hostnames if self.info and self.info.covers(h)]

    @property
    def uncovered(self) -> list[str]:
        return [h for h in self.hostnames if not (self.info and self.info.covers(h))]


def report(ctx: Context, name: str) -> Report:
    return _report(ctx, subject(ctx, name, "certs:report"))


def _report(ctx: Context, s: Subject) -> Report:
    next_try = get(ctx, s, S_ACME_NEXT)
    return Report(
        s.name,
        current_info(s),
        get(ctx, s, S_SOURCE),
        s.hostnames,
        get(ctx, s, S_REDIRECT) != "off",
        get(ctx, s, S_HSTS) == "on",
        get(ctx, s, S_ACME) == "on",
        get(ctx, s, S_ACME_ERROR),
        float(next_try) if next_try else None,
    )


def reports(ctx: Context) -> list[Report]:
    """`letsencrypt:list`: the apps the actor may view (admins: and the dashboard)."""
    return [_report(ctx, s) for s in all_subjects(ctx)]


def after_destroy(ctx: Context, app: App) -> None:
    shutil.rmtree(_folder(ctx, app), ignore_errors=True)


def restore_from_backup(ctx: Context, source: RestoreSource, log: BuildLog) -> str:
    """`backup:restore --app`: the app's certificate folder from the backup, under its id here
    (a platform restore brings every folder back as it was, the ACME account's key with them)."""
    if source.whole:
        return f"{sum(1 for s in all_subjects(ctx) if has_cert(s))} certificate(s) in place"
    done = 0
    for name, (old_id, new_id) in (source.apps or {}).items():
        kept = source.root / certs_root(ctx).relative_to(ctx.settings.data_dir) / f"app-{old_id}"
        if not (kept / CERT_FILE).is_file():
            continue
        target = certs_root(ctx) / f"app-{new_id}"
        _ensure_folder(certs_root(ctx))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(kept, target)
        done += 1
        log.detail(f"certificate of {name} restored")
    return f"{done} certificate(s) restored"
