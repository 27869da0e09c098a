"""Review apps: the rules. A branch pushed to an app (its parent) becomes a disposable copy of it.

- `review-apps:enable <app>` (manage) turns them on for the parent; from then on a push of any
  branch but main/master creates or updates the review app `<parent>-<branch slug>-<hash>`
  (`review_name`), built from the parent's repo with app.json's `environments.review` applied,
  served at its own `<name>.<domain>`.
- Its config is the parent's at creation, except the parent's backing services (their URLs, and
  DATABASE_URL/REDIS_URL however they were set: never the parent's database) and what the review
  environment sets itself or marks `"required": false`; its addons are fresh services of its own
  (the datastores plugin marks them and destroys them with it; `paas_linked_config_keys` names
  the keys); `scripts.postdeploy` runs once when it is created (the first deploy),
  `scripts.pr-predestroy` before it goes.
- It goes when its branch is deleted (`git push paas :branch`), with `review-apps:destroy`, with
  its parent, or when nobody pushed it for the parent's `--stale-days` (default 5; the server's
  reconcile loop).
- It belongs to the parent's owner (their quotas count it) and has the parent's collaborators,
  with the same permissions (paas.services.access decides for it by the parent).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import docker
from dulwich.repo import Repo

from paas.buildpacks.source import SourceTree
from paas.core import manifest as manifest_mod
from paas.core import validation
from paas.plugin_api import App, BuildLog, Conflict, Context, NotFound, PaasError, access
from paas.services import apps as apps_service
from paas.services import locks, lookup, push, release_phase
from paas.store import ReviewApp, now

log = logging.getLogger("paas.plugins.review_apps")

SETTING = "review-apps"  # "on" on a parent
STALE_SETTING = "review-apps.stale-days"
DEFAULT_STALE_DAYS = 5
MAX_STALE_DAYS = 3650
NAME_MAX = 30  # the app-name rule's length today (paas/core/validation.py): names fit it and any longer one
HASH_LEN = 5  # base32: 25 bits of sha256(parent, branch)
PREDESTROY_TIMEOUT = 300
ENVIRONMENT = push.REVIEW_ENVIRONMENT


# ---------------------------------------------------------------- names


def review_name(parent: str, branch: str) -> str:
    """`shop` + `feat/ÄÖ-x` -> `shop-feat-ao-x-k3q7a`: the parent's name, the branch folded to
    lowercase ASCII letters, digits and dashes and cut to fit, then a hash of the parent's name
    and the whole branch. Two branches whose slugs agree (`Feat/x` and `feat-x`, or 200
    characters alike at the start) still get different names; if the hash too collides, or
    another app has the name, the push is refused (never given another app)."""
    digest = hashlib.sha256(f"{parent}\0{branch}".encode()).digest()
    tag = base64.b32encode(digest).decode().lower()[:HASH_LEN]
    folded = unicodedata.normalize("NFKD", branch).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")
    room = NAME_MAX - len(parent) - len(tag) - 2
    if slug and room >= 1:
        name = f"{parent}-{slug[:room].rstrip('-')}-{tag}"
    else:
        name = f"{parent[: NAME_MAX - len(tag) - 1].rstrip('-')}-{tag}"
    return validation.app_name(name)


def parse_stale_days(text: str | int | None) -> int:
    """`--stale-days N`: whole days without a push before a review app goes (0: never)."""
    if text is None:
        return DEFAULT_STALE_DAYS
    raw = str(text).strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_STALE_DAYS:
        raise PaasError(
            f"invalid --stale-days {raw!r}: a whole number of days from 0 (never) to {MAX_STALE_DAYS}"
        )
    return int(raw)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    enabled: bool
    stale_days: int


def settings_of(ctx: Context, app: App) -> Settings:
    raw = ctx.store.get_setting(app.id, STALE_SETTING)
    return Settings(
        ctx.store.get_setting(app.id, SETTING) == "on", int(raw) if raw is not None else DEFAULT_STALE_DAYS
    )


def _parent_app(ctx: Context, app: App, operation: str) -> App:
    if app.parent_id is not None:
        parent = ctx.store.get_app_by_id(app.parent_id)
        raise PaasError(
            f"{app.name} is a review app"
            + (f": run {operation} on {parent.name}" if parent is not None else "")
        )
    return app


def enable(ctx: Context, app_name: str, stale_days: str | int | None = None) -> Settings:
    """`review-apps:enable <app> [--stale-days N]`: each branch pushed from now on gets a review app."""
    app = _parent_app(ctx, access.authorize(ctx, app_name, "review-apps:enable"), "review-apps:enable")
    days = parse_stale_days(stale_days)
    ctx.store.set_setting(app.id, SETTING, "on")
    ctx.store.set_setting(app.id, STALE_SETTING, str(days))
    ctx.store.add_event(
        app, ctx.actor, "review-apps:enable", f"stale after {days} day(s)" if days else "never stale"
    )
    return settings_of(ctx, app)


def disable(ctx: Context, app_name: str) -> bool:
    """`review-apps:disable <app>`: no new review apps; those there stay until their branch goes,
    they are destroyed, or they go stale. False when they were off."""
    app = _parent_app(ctx, access.authorize(ctx, app_name, "review-apps:disable"), "review-apps:disable")
    if not settings_of(ctx, app).enabled:
        return False
    ctx.store.set_setting(app.id, SETTING, None)
    ctx.store.add_event(app, ctx.actor, "review-apps:disable")
    return True


# ---------------------------------------------------------------- what is there


def _row(ctx: Context, review: ReviewApp) -> dict:
    release = ctx.store.current_release(review.app_id)
    return {
        "name": review.name,
        "branch": review.branch,
        "url": lookup.app_url(ctx, review.name),
        "release": release.version if release else None,
        "created_at": review.created_at,
        "pushed_at": review.pushed_at,
    }


def report(ctx: Context, app_name: str) -> dict:
    """`review-apps:list <app>` (and the app page's panel): whether they are on, the stale timer,
    and each review app (name, branch, URL, release, created, last push); for a review app, its
    parent and branch."""
    app = access.authorize(ctx, app_name, "review-apps:list")
    review = ctx.store.review_app(app.id) if app.parent_id is not None else None
    parent = ctx.store.get_app_by_id(app.parent_id) if app.parent_id is not None else None
    settings = settings_of(ctx, app)
    return {
        "app": app.name,
        "enabled": settings.enabled,
        "stale_days": settings.stale_days,
        "parent": parent.name if parent else None,
        "branch": review.branch if review else None,
        "review_apps": [_row(ctx, r) for r in ctx.store.review_apps_of(app.id)],
    }


# ---------------------------------------------------------------- a pushed branch


def _excluded_keys(ctx: Context, parent: App, manifest: manifest_mod.Manifest | None) -> set[str]:
    """What a review app never takes from its parent's config: its backing services (every
    link's key, and each kind's own variable however it was set) and what the review
    environment sets itself or marks `"required": false`."""
    keys: set[str] = set()
    for _, call in ctx.plugins.each("paas_linked_config_keys"):
        keys.update(call(ctx=ctx, app=parent) or [])
    if manifest is not None:
        keys.update(
            k
            for k, spec in manifest.env.items()
            if spec.value is not None or spec.generator or not spec.required
        )
    return keys


def _manifest(repo: Repo, sha: str) -> manifest_mod.Manifest | None:
    text = SourceTree(repo, sha).read("app.json")
    return manifest_mod.parse(text).for_environment(ENVIRONMENT) if text is not None else None


def receive_branch(
    ctx: Context,
    app: App,
    branch: str,
    old_sha: str | None,
    new_sha: str | None,
    repo: Repo,
    log: BuildLog,
) -> str:
    """From `paas_receive_branch` (push.push_branch checked `git:push` on `app`): create or
    update the branch's review app, or destroy it when the branch is deleted. The line for the
    pusher names its URL."""
    if app.parent_id is not None:  # the git door refuses pushes to a review app before this
        raise PaasError(f"{app.name} is a review app: push to its parent")
    review = ctx.store.review_app_of_branch(app.id, branch)
    if new_sha is None:
        if review is None:
            return f"Deleted branch {branch} (it had no review app)"
        child = ctx.store.get_app_by_id(review.app_id)
        if child is not None:
            log.step(f"Destroying review app {child.name} (branch {branch} deleted)")
            apps_service.remove_app(ctx, child, log)
        return f"Destroyed review app {review.name} of {app.name}"
    if review is None and not settings_of(ctx, app).enabled:
        raise PaasError(
            f"{push.deploy_branch_hint(ctx, app.name, branch)}"
            f" (review-apps:enable {app.name} makes a review app of each other branch)"
        )
    name = review.name if review is not None else review_name(app.name, branch)
    created: App | None = None
    try:
        with locks.app_lock(
            ctx, name, on_wait=lambda: log.step(f"Waiting for another deploy of {name} to end")
        ):
            push.check_branch_unmoved(repo, branch, old_sha)
            review = ctx.store.review_app_of_branch(app.id, branch)  # again, under the lock
            if review is None and ctx.store.get_app(name) is not None:
                raise Conflict(
                    f"the review app name {name} for branch {branch!r} is another app's: rename the branch"
                )
            if review is None:
                config = review_config(ctx, app, name, branch, _manifest(repo, new_sha))
                created = apps_service.create_review_app(ctx, app, name, branch)
                log.step(f"Creating review app {name} of {app.name} for branch {branch}")
                ctx.store.replace_config(created.id, config)
                if config:
                    log.detail(f"config from {app.name} and app.json: {', '.join(sorted(config))}")
            child = created or ctx.store.get_app_by_id(review.app_id)  # type: ignore[union-attr]
            if child is None:
                raise NotFound(f"review app {name} is gone: push again")
            try:
                push.build_and_deploy(ctx, child, repo, new_sha, log, environment=ENVIRONMENT)
            except release_phase.PostdeployFailed:
                ctx.store.review_app_pushed(child.id, now())
                created = None  # live: kept, and the push still ends as failed
                log.done(f"Review app of {app.name} for branch {branch}: {lookup.app_url(ctx, name)}")
                raise
            ctx.store.review_app_pushed(child.id, now())
    except BaseException:
        if created is not None:  # a failed first push leaves no review app (nor its services) behind
            log.detail(f"removing the review app {name}: its first deploy failed")
            try:
                apps_service.remove_app(ctx, created, BuildLog(log.detail))
            except (PaasError, docker.errors.DockerException) as exc:
                log.detail(f"could not remove {name}: {exc}")
        raise
    return f"Review app of {app.name} for branch {branch}: {lookup.app_url(ctx, name)}"


def review_config(
    ctx: Context, parent: App, name: str, branch: str, manifest: manifest_mod.Manifest | None
) -> dict[str, str]:
    """A new review app's config before its first build: the parent's, but what `_excluded_keys`
    names, with Heroku's HEROKU_APP_NAME, HEROKU_PARENT_APP_NAME and HEROKU_BRANCH when app.json
    asks for them. app.json's values (and secrets) are added by its first deploy
    (paas.services.first_deploy); a required key neither gives is refused here, naming the parent."""
    skip = _excluded_keys(ctx, parent, manifest)
    config = {k: v for k, v in ctx.store.get_config(parent.id).items() if k not in skip}
    given = {"HEROKU_APP_NAME": name, "HEROKU_PARENT_APP_NAME": parent.name, "HEROKU_BRANCH": branch}
    wanted = manifest.env if manifest is not None else {}
    config.update({k: v for k, v in given.items() if k in wanted and wanted[k].value is None})
    missing = sorted(
        k
        for k, spec in wanted.items()
        if spec.required and spec.value is None and not spec.generator and k not in config
    )
    if missing:
        raise PaasError(
            f"app.json requires {', '.join(missing)}: set {'them' if len(missing) > 1 else 'it'}"
            f" on {parent.name} (review apps copy its config)"
        )
    validation.config_size(config)
    return config


# ---------------------------------------------------------------- going


def destroy(ctx: Context, name: str, log: BuildLog) -> None:
    """`review-apps:destroy <review app>` (deploy on its parent: as much as deleting its branch)."""
    app = access.authorize(ctx, name, "review-apps:destroy")
    if app.parent_id is None or ctx.store.review_app(app.id) is None:
        raise PaasError(f"{app.name} is not a review app (apps:destroy destroys an app)")
    apps_service.remove_app(ctx, app, log)


def before_destroy(ctx: Context, app: App, log: BuildLog) -> None:
    """From `paas_app_destroying`: a review app runs app.json's `scripts.pr-predestroy` (in a
    one-off container of its current release: its config and services are still there); a
    parent's review apps go first."""
    for review in ctx.store.review_apps_of(app.id):
        child = ctx.store.get_app_by_id(review.app_id)
        if child is not None:
            log.step(f"Destroying review app {child.name} of {app.name}")
            apps_service.remove_app(ctx, child, log)
    if app.parent_id is None:
        return
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    if release is None or build is None or not build.image:
        return
    try:
        command = manifest_mod.from_data(build.manifest).predestroy if build.manifest else None
    except PaasError:
        command = None
    if not command:
        return
    log.step(f"Running pr-predestroy: {command}")
    try:
        status = release_phase.run_oneoff(
            ctx,
            app,
            release,
            build.image,
            ["/bin/sh", "-c", command],
            "predestroy.1",
            log,
            timeout=PREDESTROY_TIMEOUT,
        )
    except (PaasError, docker.errors.DockerException) as exc:
        log.error(f"pr-predestroy failed ({exc}); destroying {app.name} anyway")
        return
    if status != 0:
        log.error(f"pr-predestroy failed (exit status {status}); destroying {app.name} anyway")
    else:
        log.detail("pr-predestroy done")


_removing: set[int] = set()
_removing_lock = threading.Lock()


def stale(ctx: Context, at: datetime | None = None) -> list[ReviewApp]:
    """The review apps nobody pushed for their parent's stale days (0: never), and those whose
    parent is gone."""
    at = at or datetime.now(UTC)
    cutoff = (at - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for review in ctx.store.review_apps_pushed_before(cutoff):
        parent = ctx.store.get_app_by_id(review.parent_id)
        days = settings_of(ctx, parent).stale_days if parent is not None else 0
        limit = (at - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if parent is None or (days and review.pushed_at < limit):
            out.append(review)
    return out


def remove_stale(ctx: Context, at: datetime | None = None, wait: bool = False) -> list[str]:
    """From `paas_reconcile`: destroy stale review apps, each in a thread of its own (a pass
    stays quick); one whose deploy runs is left for a later pass. Their names."""
    started = []
    threads = []
    for review in stale(ctx, at):
        if locks.is_held(ctx, review.name):
            continue
        with _removing_lock:
            if review.app_id in _removing:
                continue
            _removing.add(review.app_id)
        thread = threading.Thread(
            target=_remove_one, args=(ctx, review), daemon=True, name=f"stale-{review.name}"
        )
        thread.start()
        threads.append(thread)
        started.append(review.name)
    for thread in threads if wait else []:
        thread.join()
    return started


def _remove_one(ctx: Context, review: ReviewApp) -> None:
    try:
        app = ctx.store.get_app_by_id(review.app_id)
        if app is None:
            return
        ctx.store.add_event(app, "paas", "review-apps:stale", f"no push since {review.pushed_at}")
        out = BuildLog()
        apps_service.remove_app(ctx, app, out)
        log.info(
            "removed stale review app %s (branch %s, last push %s)", app.name, review.branch, review.pushed_at
        )
    except Exception:
        log.exception("could not remove the stale review app %s", review.name)
    finally:
        with _removing_lock:
            _removing.discard(review.app_id)
