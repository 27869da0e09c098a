"""Apps: create, info, rename, destroy (looking them up is in lookup.py)."""

from __future__ import annotations

import shutil
import sqlite3

import docker

from paas.core import names, networks, validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import Conflict, PaasError
from paas.scheduler import host_containers as sched
from paas.services import access, moves, quotas, routing, schedulers
from paas.services.deploy import deploy_release, stop_timeout
from paas.services.locks import app_lock
from paas.services.lookup import app_url, get_app
from paas.services.processes import list_processes
from paas.store import App, now


def create_app(ctx: Context, name: str) -> App:
    """A new app, owned by its creator (PAAS_APP_CREATE=admins keeps creating to admins)."""
    validation.app_name(name)
    owner = access.require_create(ctx)
    if ctx.store.get_app(name):
        raise Conflict(f"app {name!r} already exists")
    quotas.require_app_slot(ctx, owner)
    try:
        app = ctx.store.create_app(name, owner, moves.default_scheduler(ctx))
    except sqlite3.IntegrityError:
        raise Conflict(f"app {name!r} already exists") from None
    ctx.store.add_event(name, ctx.actor, "apps:create")
    ctx.plugins.call_post("paas_app_created", ctx=ctx, app=app)
    return app


def ensure_app(ctx: Context, name: str) -> App:
    """The app to push to, created on the fly: a first `git push` creates it, as Dokku does.
    Pushing to an existing app needs `deploy` on it; someone who cannot see it is told it does not
    exist and may not take the name either."""
    validation.app_name(name)
    if ctx.store.get_app(name) is not None:
        return _not_review(ctx, access.authorize(ctx, name, "git:push"))
    try:
        return create_app(ctx, name)
    except Conflict:  # created concurrently by another push
        return _not_review(ctx, access.authorize(ctx, name, "git:push"))


def _not_review(ctx: Context, app: App) -> App:
    """A review app is built from its branch of the parent's repo: it has no repo to push to."""
    if app.parent_id is not None:
        parent = ctx.store.get_app_by_id(app.parent_id)
        review = ctx.store.review_app(app.id)
        if parent is not None and review is not None:
            raise PaasError(
                f"{app.name} is the review app of {parent.name}'s branch {review.branch!r}: push that branch"
                f" to {parent.name} (git push paas {review.branch} with paas:{parent.name} as the remote)"
            )
    return app


def create_review_app(ctx: Context, parent: App, name: str, branch: str) -> App:
    """A review app of `parent` (the review_apps plugin has checked `git:push` on the parent and
    made the name): owned by the parent's owner, within their apps quota, with the parent's
    scheduler; `paas_app_created` sees it with its `parent_id`."""
    validation.app_name(name)
    if ctx.store.get_app(name):
        raise Conflict(f"app {name!r} already exists")
    quotas.require_app_slot(ctx, parent.owner_id)
    try:
        app = ctx.store.create_app(name, parent.owner_id, parent.scheduler, review=(parent.id, branch))
    except sqlite3.IntegrityError:
        raise Conflict(f"app {name!r} already exists") from None
    ctx.store.add_event(app, ctx.actor, "apps:create", f"review app of {parent.name}, branch {branch}")
    ctx.plugins.call_post("paas_app_created", ctx=ctx, app=app)
    return app


def transfer(ctx: Context, app_name: str, user_name: str) -> App:
    """apps:transfer: the user becomes the owner, if their quotas hold the app (nobody fills a
    neighbour's); the previous owner keeps view, deploy and operate (as Heroku)."""
    app = access.authorize(ctx, app_name, "apps:transfer")
    access.require_own_access(ctx, app, "apps:transfer")
    user = access.user_named(ctx, user_name)
    if user.id == app.owner_id:
        raise PaasError(f"{user.name} already owns {app.name}")
    quotas.require_transfer(ctx, app, user.id)
    ctx.store.transfer_app(app.id, user.id)
    if app.owner_id is not None and ctx.store.get_user_by_id(app.owner_id) is not None:
        ctx.store.set_grant(app.id, app.owner_id, access.DEFAULT_GRANT, now())
    ctx.store.add_event(None, ctx.actor, "apps:transfer", f"{app.name}: to {user.name}")  # the admins' audit
    ctx.store.add_event(app.name, ctx.actor, "apps:transfer", f"to {user.name}")
    return ctx.store.get_app(app.name)  # type: ignore[return-value]


def app_info(ctx: Context, name: str) -> dict:
    """Everything `apps:info` shows, with stable keys (also the JSON shape)."""
    app = access.authorize(ctx, name, "apps:info")
    parent = ctx.store.get_app_by_id(app.parent_id) if app.parent_id is not None else None
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    procs = list_processes(ctx, name)
    return {
        "name": app.name,
        "created_at": app.created_at,
        "url": app_url(ctx, app.name),
        "domains": ctx.store.list_domains(app.id),
        "release": release.version if release else None,
        "deployed_at": release.created_at if release else None,
        "commit": build.commit_sha if build else None,
        "buildpack": build.buildpack if build else None,
        "formation": ctx.store.get_formation(app.id),
        "processes": {p.dyno: p.state for p in procs},
        "stopped": bool(app.stopped),
        "git_remote": f"paas:{parent.name if parent else app.name}",
        "parent": parent.name if parent else None,  # a review app's
    }


def _remove_volume(ctx: Context, name: str) -> None:
    try:
        ctx.docker.volumes.get(name).remove(force=True)
    except docker.errors.DockerException:
        pass


def rename_app(ctx: Context, old: str, new: str) -> App:
    """Rename: store, repo, then the current release redeployed under the new name."""
    app = access.authorize(ctx, old, "apps:rename")
    validation.app_name(new)
    if ctx.store.get_app(new):
        raise Conflict(f"app {new!r} already exists")
    with app_lock(ctx, old), app_lock(ctx, new):
        scheduler = schedulers.for_app(ctx, app)
        old_processes = scheduler.processes(old)
        ctx.store.rename_app(app.id, new)
        repo = names.repo_path(ctx.settings, old)
        if repo.exists():
            repo.rename(names.repo_path(ctx.settings, new))
        renamed = get_app(ctx, new)
        release = ctx.store.current_release(renamed.id)
        if release is not None and not renamed.stopped:
            deploy_release(ctx, renamed, release, BuildLog())
        routing.router(ctx).remove_app(old)
        scheduler.stop(old_processes, timeout=stop_timeout(ctx, renamed))
        # Named after the old name: a new app of that name must not inherit them. Docker cannot
        # rename a volume; the cache only saves download time, so it goes.
        _remove_volume(ctx, names.cache_volume(ctx.settings.instance_id, old))
        networks.remove_app_networks(ctx.docker, ctx.settings.instance_id, old)
        ctx.store.add_event(new, ctx.actor, "apps:rename", f"{old} -> {new}")
    ctx.plugins.call_post("paas_app_renamed", ctx=ctx, app=renamed, old_name=old)
    return renamed


def destroy_app(ctx: Context, name: str, confirm: str | None, log: BuildLog | None = None) -> None:
    """Remove containers, route, images, build cache, repo and every record of the app."""
    app = access.authorize(ctx, name, "apps:destroy")
    if confirm != app.name:
        raise PaasError(f"this destroys {app.name} and its data; run again with --confirm {app.name}")
    remove_app(ctx, app, log or BuildLog())


def remove_app(ctx: Context, app: App, log: BuildLog) -> None:
    """What `apps:destroy` does once its rule passed (a review app's end: its branch deleted, the
    stale timer, its parent destroyed). Plugins act first (`paas_app_destroying`: a review app's
    pr-predestroy, its parent's review apps), then everything of the app goes, then they clean up
    their own state (`paas_app_destroyed`). The app's lock is held from the first hook on: the
    reconcile pass leaves the one-offs of a locked app alone."""
    with app_lock(ctx, app.name):
        ctx.plugins.call_post("paas_app_destroying", ctx=ctx, app=app, log=log)
        client = ctx.docker
        routing.router(ctx).remove_app(app.name)
        instance = ctx.settings.instance_id
        scheduler = schedulers.for_app(ctx, app)
        scheduler.stop(scheduler.processes(app.name), timeout=5)  # swarm services first: no restarts
        # Every container of the app, whatever its role (processes, one-offs, builds, release phase).
        labels = names.label_filter(instance, app.name)
        sched.stop_and_remove(
            client.containers.list(all=True, ignore_removed=True, filters={"label": labels}), timeout=5
        )
        images = {b.image for b in ctx.store.list_builds(app.id) if b.image}
        for image in client.images.list(name=names.image_repository(app.name)):  # dependency layers too
            images.update(t for t in image.tags if t.endswith(f"-{instance}"))
        for image in images:
            try:
                client.images.remove(image, force=True)
            except docker.errors.DockerException:
                pass
        _remove_volume(ctx, names.cache_volume(ctx.settings.instance_id, app.name))
        networks.remove_app_networks(client, instance, app.name)
        shutil.rmtree(names.repo_path(ctx.settings, app.name), ignore_errors=True)
        shutil.rmtree(names.jobs_dir(ctx.settings, app.id), ignore_errors=True)  # deploys from the web
        ctx.store.delete_app(app.id)
        ctx.store.add_event(app, ctx.actor, "apps:destroy")
    ctx.plugins.call_post("paas_app_destroyed", ctx=ctx, app=app, log=log)
