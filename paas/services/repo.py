"""The per-app build cache (a docker volume with pip's and npm's downloads, tools like uv)."""

from __future__ import annotations

import docker

from paas.core.context import Context
from paas.core.names import cache_volume
from paas.errors import PaasError
from paas.services import access
from paas.services.locks import app_lock


def purge_cache(ctx: Context, app_name: str) -> bool:
    """Remove the app's build cache; the next build starts cold. False when there was none.

    The dependency layers are images, not cache: they stay, and a push whose dependencies are
    unchanged still reuses its layer.
    """
    app = access.authorize(ctx, app_name, "repo:purge-cache")
    with app_lock(ctx, app.name):
        try:
            volume = ctx.docker.volumes.get(cache_volume(ctx.settings.instance_id, app.name))
        except docker.errors.NotFound:
            return False
        try:
            volume.remove(force=True)
        except docker.errors.APIError as exc:
            raise PaasError(f"cannot remove the build cache of {app.name}: {exc.explanation}") from None
    ctx.store.add_event(app.name, ctx.actor, "repo:purge-cache")
    return True
