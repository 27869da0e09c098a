"""Maintenance mode: the rules. While an app is in maintenance the router answers every request
for its hostnames with 503 and a page, whatever runs (or does not run) behind it.

The state is one per-app setting in the store, so it survives restarts and renames and goes
with the app. The page is a file under the router's prefix, refreshed on every deploy: the app's
own `maintenance.html` from the deployed commit when it ships one, else a plain page.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from dulwich.repo import Repo

from paas.buildpacks.source import SourceTree
from paas.core import names, validation
from paas.plugin_api import App, Context, Release, RouteExtras, Settings, access, app_lock
from paas.services import routing
from paas.services.lookup import list_apps

log = logging.getLogger("paas.plugins.maintenance")

SETTING = "maintenance"
PAGE_NAME = "maintenance.html"  # in the app's repo root, and the internal URI nginx serves it at
PAGE_URI = f"/{PAGE_NAME}"
MAX_PAGE = 256 << 10  # a page, not a site: bigger ones get the plain page
WORKER_USERS = ("www-data", "nobody")  # what paas.router.nginx runs nginx workers as when root

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Page:
    """Which page an app in maintenance is answered with, and why, for the user."""

    source: str  # "app" (the commit's maintenance.html) or "plain"
    detail: str


@dataclass(frozen=True)
class Status:
    app: str
    enabled: bool


# state
def is_on(ctx: Context, app: App) -> bool:
    return ctx.store.get_setting(app.id, SETTING) == "on"


def report(ctx: Context, name: str | None = None) -> list[Status]:
    """One app's state, or every app's."""
    apps = [access.authorize(ctx, name, "maintenance:report")] if name is not None else list_apps(ctx)
    return [Status(a.name, is_on(ctx, a)) for a in apps]


def enable(ctx: Context, name: str, on_wait: Callable[[], None] | None = None) -> tuple[bool, Page]:
    """Turn maintenance on and make it live before returning: (whether it changed, the page)."""
    app = access.authorize(ctx, name, "maintenance:on")
    with app_lock(ctx, app.name, on_wait=on_wait):
        page = refresh_page(ctx, app)
        changed = _set(ctx, app, True)
    return changed, page


def disable(ctx: Context, name: str, on_wait: Callable[[], None] | None = None) -> bool:
    """Turn maintenance off: the app's web processes (if any run) take traffic again."""
    app = access.authorize(ctx, name, "maintenance:off")
    with app_lock(ctx, app.name, on_wait=on_wait):
        changed = _set(ctx, app, False)
        shutil.rmtree(page_dir(ctx.settings, app.name), ignore_errors=True)
    return changed


def _set(ctx: Context, app: App, on: bool) -> bool:
    """Store the state and re-route under the app's lock; if the router refuses, the state
    goes back, so it always matches what is served."""
    was_on = is_on(ctx, app)
    ctx.store.set_setting(app.id, SETTING, "on" if on else None)
    try:
        routing.sync_app_route(ctx, app.name)
    except Exception:
        ctx.store.set_setting(app.id, SETTING, "on" if was_on else None)
        raise
    if was_on != on:
        ctx.store.add_event(app.name, ctx.actor, "maintenance:on" if on else "maintenance:off", "")
    return was_on != on


# the page
def page_dir(settings: Settings, app: str) -> Path:
    return settings.nginx_dir / "html" / "maintenance" / validation.app_name(app)


def page_path(settings: Settings, app: str) -> Path:
    return page_dir(settings, app) / PAGE_NAME


def plain_page(app: str) -> str:
    return _templates.get_template("maintenance.html.j2").render(app=app)


def app_page(ctx: Context, app: App, release: Release | None) -> tuple[str | None, str]:
    """The deployed commit's maintenance.html (text or None) and a line saying why."""
    build = ctx.store.build_of(release)
    if build is None or not build.commit_sha:
        return None, "no deployed commit"
    repo_path = names.repo_path(ctx.settings, app.name)
    try:
        with Repo(str(repo_path)) as repo:
            tree = SourceTree(repo, build.commit_sha)
            if not tree.is_file(PAGE_NAME):
                return None, f"commit {build.commit_sha[:7]} has no {PAGE_NAME}"
            text = tree.read(PAGE_NAME, limit=MAX_PAGE)
    except Exception as exc:  # a missing repo or object: the plain page still answers
        log.warning("cannot read %s of %s at %s: %s", PAGE_NAME, app.name, build.commit_sha, exc)
        return None, f"cannot read {PAGE_NAME} of commit {build.commit_sha[:7]}"
    if text is None:
        return None, f"{PAGE_NAME} of commit {build.commit_sha[:7]} is larger than {MAX_PAGE >> 10} KiB"
    return text, f"{PAGE_NAME} of commit {build.commit_sha[:7]}"


def refresh_page(ctx: Context, app: App, release: Release | None = None) -> Page:
    """Write the page nginx serves for the app (from `release`, or the current one)."""
    release = release or ctx.store.current_release(app.id)
    text, why = app_page(ctx, app, release)
    if text is not None:
        page = Page("app", f"serving {why}")
    else:
        page = Page("plain", f"serving the plain page ({why})")
        text = plain_page(app.name)
    _write_page(ctx.settings, app.name, text)
    blocked = blocked_by(page_path(ctx.settings, app.name))
    if blocked is not None:
        page = Page("plain", f"serving nginx's own 503 page: its workers cannot read {blocked}")
    return page


def _write_page(settings: Settings, app: str, text: str) -> None:
    """Atomically, world-readable: nginx workers run as www-data when the server runs as root."""
    folder = page_dir(settings, app)
    for d in (settings.nginx_dir / "html", folder.parent, folder):
        d.mkdir(exist_ok=True, parents=True)
        os.chmod(d, 0o755)
    tmp = folder / f".{PAGE_NAME}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / PAGE_NAME)


def _worker_ids() -> tuple[int, set[int]] | None:
    """The uid and gids nginx workers run as, or None when they run as this process's user."""
    if os.geteuid() != 0:
        return None
    for name in WORKER_USERS:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return user.pw_uid, set(os.getgrouplist(name, user.pw_gid))
    return 65534, {65534}  # nginx's own default, nobody


def _allowed(path: Path, ids: tuple[int, set[int]], bits: tuple[int, int, int]) -> bool:
    st = path.stat()
    if st.st_uid == ids[0]:
        return bool(st.st_mode & bits[0])
    if st.st_gid in ids[1]:
        return bool(st.st_mode & bits[1])
    return bool(st.st_mode & bits[2])


def blocked_by(path: Path) -> Path | None:
    """What stops nginx workers opening `path` (a folder above it they cannot search, or the
    file itself), or None when they can."""
    ids = _worker_ids()
    if not path.is_file():
        return path
    if ids is None:
        return None
    try:
        for folder in reversed(path.parents):
            if not _allowed(folder, ids, (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)):
                return folder
        return None if _allowed(path, ids, (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)) else path
    except OSError:
        return path


# the router
def nginx_extras(ctx: Context, app: App, extras: RouteExtras) -> None:
    """While on, `/` answers 503; the page is served by an internal location, so any method and
    any path (even /maintenance.html itself) gets the page with 503."""
    if not is_on(ctx, app):
        return
    path = page_path(ctx.settings, app.name)
    if not path.is_file():  # a rename, or a wiped router prefix
        try:
            refresh_page(ctx, app)
        except OSError as exc:  # nginx's own 503 page still answers; routing must not fail
            log.warning("cannot write the maintenance page of %s: %s", app.name, exc)
    no_store = "add_header Cache-Control no-store always"
    if blocked_by(path) is not None:
        extras.add_location("/", [no_store, "return 503"])
        return
    extras.add_location("/", [f"error_page 503 {PAGE_URI}", "return 503"])
    extras.add_location(
        f"= {PAGE_URI}",
        [
            "internal",
            f"root {path.parent}",
            "default_type text/html",
            "charset utf-8",
            no_store,
            # a request for the URI itself finds the location internal (404): answer it the same
            f"error_page 404 =503 {PAGE_URI}",
        ],
    )


# lifecycle
def after_deploy(ctx: Context, app: App, release: Release) -> None:
    """A new commit may ship a new maintenance.html (nginx reads the file per request)."""
    if is_on(ctx, app):
        refresh_page(ctx, app, release)


def after_destroy(ctx: Context, app: App) -> None:
    shutil.rmtree(page_dir(ctx.settings, app.name), ignore_errors=True)


def after_rename(ctx: Context, app: App, old_name: str) -> None:
    """The setting stays with the app id; the page moves, and the route under the new name is
    made even when nothing runs (a rename only redeploys running apps)."""
    shutil.rmtree(page_dir(ctx.settings, old_name), ignore_errors=True)
    if is_on(ctx, app):
        with app_lock(ctx, app.name):
            refresh_page(ctx, app)
            routing.sync_app_route(ctx, app.name)
