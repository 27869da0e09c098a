"""An app's repository and build cache: `repo:gc`, `repo:purge-cache`.

The build cache is a docker volume with pip's and npm's downloads and tools like uv.
"""

from __future__ import annotations

import fcntl
import time

import docker
from dulwich.gc import garbage_collect
from dulwich.repo import Repo

from paas.core import names
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


GC_LOCK_WAIT = 30.0


def gc(ctx: Context, app_name: str) -> dict[str, int]:
    """`repo:gc`: pack the repository's loose objects and drop unreachable ones older than two
    weeks (a push in flight has younger ones). Holds the app's lock and the repository's push
    lock exclusively, as a repack after a push does."""
    app = access.authorize(ctx, app_name, "repo:gc")
    path = names.repo_path(ctx.settings, app.name)
    if not path.exists():
        raise PaasError(f"{app.name} has no repository yet: git push first")
    with app_lock(ctx, app.name), open(path / names.REPO_PUSH_LOCK, "a") as lock:
        deadline = time.monotonic() + GC_LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PaasError(f"a push to {app.name} is in flight: run repo:gc again later") from None
                time.sleep(0.2)
        repo = Repo(str(path))
        try:
            stats = garbage_collect(repo)
        finally:
            repo.close()
    ctx.store.add_event(app.name, ctx.actor, "repo:gc", f"{stats.pruned_objects} object(s) pruned")
    return {"pruned": stats.pruned_objects, "packs": stats.packs_after, "loose": stats.loose_objects_after}
