"""Garbage: keep the images of the last N good releases per app (for rollback), drop the rest."""

from __future__ import annotations

import docker

from paas.buildpacks.builder import remove_kept_builds
from paas.core import names
from paas.core.context import Context
from paas.core.names import image_repository
from paas.errors import PermissionDenied
from paas.services import access
from paas.store import App


def collect(ctx: Context, app: App) -> list[str]:
    """Remove build images no recent good release uses, the dependency layers only those used,
    and dangling leftovers of this instance's builds; returns the removed references."""
    keep_n = ctx.settings.keep_releases
    keep: set[int] = set()
    current = ctx.store.current_release(app.id)
    if current and current.build_id:
        keep.add(current.build_id)
    for r in ctx.store.list_releases(app.id):  # newest first
        if len(keep) >= keep_n:
            break
        if r.status == "succeeded" and r.build_id:
            keep.add(r.build_id)
    removed = []
    client = ctx.docker
    for build in ctx.store.list_builds(app.id):
        if not build.image or build.id in keep:
            continue
        try:
            client.images.remove(build.image, noprune=False)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError:
            continue  # still used by a container: try again next time
        ctx.store.forget_image(build.id)
        removed.append(build.image)
    removed += _dependency_layers(ctx, app, keep)
    # One by one, not `images.prune`: the engine runs one prune at a time and refuses another
    # meanwhile ("a prune operation is already running"), so deploys of other apps pruning at
    # the same moment left this one's leftovers behind.
    leftovers = client.images.list(
        filters={"dangling": True, "label": names.label_filter(ctx.settings.instance_id)}
    )
    for image in leftovers:
        try:
            client.images.remove(image.id, noprune=False)
            removed.append(image.id)
        except docker.errors.APIError:
            continue  # gone meanwhile, or a container or a child image uses it
    return removed


def _dependency_layers(ctx: Context, app: App, keep: set[int]) -> list[str]:
    """Dependency-layer images (`deps-*`) that no kept build image is built on."""
    client = ctx.docker
    repository = image_repository(app.name)
    suffix = f"-{ctx.settings.instance_id}"
    used: set[str] = set()
    for build in ctx.store.list_builds(app.id):
        if build.id in keep and build.image:
            try:
                used.update(client.images.get(build.image).attrs["RootFS"]["Layers"])
            except docker.errors.ImageNotFound:
                continue
    removed = []
    for image in client.images.list(name=repository):
        for tag in image.tags:
            name = tag.split(":", 1)[1]
            if not (name.startswith("deps-") and name.endswith(suffix)):
                continue
            layers = image.attrs.get("RootFS", {}).get("Layers") or []
            if layers and layers[-1] in used:
                continue
            try:
                client.images.remove(tag)
                removed.append(tag)
            except docker.errors.APIError:
                pass
    return removed


def cleanup(ctx: Context, app_name: str | None) -> list[str]:
    """Dokku's `cleanup [<app>]`: the garbage a deploy collects, now, for one app or (admins)
    every app. Returns what was removed."""
    if app_name is None:
        if not access.is_admin(ctx):
            raise PermissionDenied("only an admin may clean up every app: name one")
        apps = ctx.store.list_apps()
    else:
        apps = [access.authorize(ctx, app_name, "cleanup")]
    removed = []
    for app in apps:
        removed += collect(ctx, app) + remove_kept_builds(ctx, app.name)  # builder skip-cleanup's
    return removed
