"""Garbage: keep the images of the last N good releases per app (for rollback), drop the rest."""

from __future__ import annotations

import docker

from paas.services.context import Context
from paas.store import App


def collect(ctx: Context, app: App) -> list[str]:
    """Remove build images no recent good release uses; returns the removed references."""
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
    return removed
