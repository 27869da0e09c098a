"""Releases: list, inspect, make new ones from an existing build, roll back."""

from __future__ import annotations

from dataclasses import dataclass

from paas.core import names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import Conflict, NotFound, PaasError
from paas.services import access, quotas
from paas.services.deploy import deploy_release
from paas.services.locks import app_lock
from paas.store import App, Release


@dataclass(frozen=True)
class ReleaseView:
    """A release as users see it: `current` is the one that runs."""

    release: Release
    commit: str | None
    state: str

    def as_json(self) -> dict:
        r = self.release
        return {
            "version": r.version,
            "description": r.description,
            "user": r.user,
            "created_at": r.created_at,
            "status": self.state,
            "commit": self.commit,
            "build_id": r.build_id,
            "formation": r.formation,
            "config_keys": sorted(r.config),
        }


def _view(ctx: Context, release: Release, current: Release | None) -> ReleaseView:
    build = ctx.store.build_of(release)
    state = "current" if current and current.id == release.id else release.status
    return ReleaseView(release, build.commit_sha if build else None, state)


def list_releases(ctx: Context, app_name: str) -> list[ReleaseView]:
    app = access.authorize(ctx, app_name, "releases")
    current = ctx.store.current_release(app.id)
    return [_view(ctx, r, current) for r in ctx.store.list_releases(app.id)]


def parse_version(text: str) -> int:
    raw = text[1:] if text[:1] in ("v", "V") else text
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise PaasError(f"invalid release {text!r}: use vN, e.g. v3")
    return int(raw)


def get_release(ctx: Context, app: App, version: int) -> Release:
    release = ctx.store.get_release(app.id, version)
    if release is None:
        raise NotFound(f"{app.name} has no release v{version}")
    return release


def release_info(ctx: Context, app_name: str, version_text: str) -> ReleaseView:
    app = access.authorize(ctx, app_name, "releases:info")
    release = get_release(ctx, app, parse_version(version_text))
    return _view(ctx, release, ctx.store.current_release(app.id))


def new_release(
    ctx: Context,
    app: App,
    *,
    build_id: int | None,
    config: dict[str, str],
    formation: dict[str, int],
    description: str,
    log: BuildLog,
) -> Release:
    """Record a release from an existing build and deploy it. The caller holds the app lock."""
    release = ctx.store.create_release(app.id, build_id, config, formation, description, ctx.actor)
    log.step(f"Releasing v{release.version} ({description})")
    deploy_release(ctx, app, release, log)
    return release


def default_formation(
    processes: dict[str, str], stored: dict[str, int], manifest: dict[str, int] | None = None
) -> dict[str, int]:
    """The formation of a build's process types: the stored scale for known types; a type new to
    the app gets app.json's `formation` quantity, else web=1 and 0 for the rest (as Heroku).
    Types the build no longer has are dropped; the release phase is no process."""
    manifest = manifest or {}
    return {
        t: stored.get(t, manifest.get(t, 1 if t == "web" else 0))
        for t in sorted(processes)
        if t != names.RELEASE_PROCESS
    }


def rollback(
    ctx: Context,
    app_name: str,
    version_text: str | None,
    log: BuildLog,
    reason: str | None = None,
    only_from: int | None = None,
) -> Release:
    """A new release with an earlier release's build and config (the formation stays).
    `reason` says why when it is automatic (the post-deploy watch); it is recorded and told.
    With `only_from`, nothing happens unless that release is still the current one once the
    app's lock is held (a deploy that got there first wins: Conflict)."""
    app = access.authorize(ctx, app_name, "releases:rollback")
    with app_lock(ctx, app.name):
        current = ctx.store.current_release(app.id)
        if current is None:
            raise PaasError(f"{app.name} has no release to roll back from")
        if only_from is not None and current.version != only_from:
            raise Conflict(f"v{only_from} of {app.name} is no longer current (v{current.version} is)")
        if version_text is None:
            older = [
                r
                for r in ctx.store.list_releases(app.id)
                if r.version < current.version and r.status == "succeeded"
            ]
            if not older:
                raise PaasError(f"{app.name} has no earlier good release to roll back to")
            target = older[0]
        else:
            target = get_release(ctx, app, parse_version(version_text))
            if target.status != "succeeded":
                raise PaasError(
                    f"v{target.version} {target.status}; only a good release can be rolled back to"
                )
        build = ctx.store.build_of(target)
        if build is None or not build.image:
            raise PaasError(f"v{target.version} has no image to run")
        formation = default_formation(build.processes, ctx.store.get_formation(app.id))
        quotas.require_room(ctx, app, formation)
        release = new_release(
            ctx,
            app,
            build_id=build.id,
            config=target.config,
            formation=formation,
            description=f"Rollback to v{target.version}",
            log=log,
        )
        ctx.store.replace_config(app.id, target.config)
        ctx.store.set_formation(app.id, formation)
        detail = f"v{target.version} as v{release.version}" + (f" ({reason})" if reason else "")
        ctx.store.add_event(app.name, ctx.actor, "releases:rollback", detail[:300])
        ctx.plugins.call_post(
            "paas_rolled_back", ctx=ctx, app=app, release=release, target=target, reason=reason, log=log
        )
        return release
