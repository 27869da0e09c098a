"""resource:limit, resource:limit-clear, resource:report: memory, CPU and pids per app and type.

Limits are kept per app (all types) and per process type; what a container gets is its type's
limit, else the app's, else the server default (PAAS_DEFAULT_MEMORY/CPUS/PIDS). A change makes a
new release from the current one and deploys it like any config change, with no downtime.
How limits combine and parse is in limits.py (the containers of every release read them).
"""

from __future__ import annotations

from paas.core import names, validation
from paas.core.container import Limits
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import access, quotas
from paas.services.limits import (
    ALL_TYPES,
    defaults,
    effective,
    parse_cpus,
    parse_memory,
    parse_pids,
    save,
    stored,
)
from paas.services.locks import app_lock
from paas.services.releases import new_release
from paas.store import App, Release


def _redeploy(ctx: Context, app: App, description: str, log: BuildLog) -> Release | None:
    current = ctx.store.current_release(app.id)
    if current is None or app.stopped:
        return None
    return new_release(
        ctx,
        app,
        build_id=current.build_id,
        config=dict(current.config),
        formation=ctx.store.get_formation(app.id) or current.formation,
        description=description,
        log=log,
    )


def set_limits(
    ctx: Context,
    app_name: str,
    process_type: str | None,
    memory: str | None,
    cpus: str | None,
    pids: str | None,
    log: BuildLog,
) -> Release | None:
    """resource:limit: keep the new limits only if the release with them comes up."""
    app = access.authorize(ctx, app_name, "resource:limit")
    key = validation.process_type(process_type) if process_type else ALL_TYPES
    if memory is None and cpus is None and pids is None:
        raise PaasError("give at least one of --memory, --cpu, --pids")
    new = Limits(
        parse_memory(memory) if memory is not None else None,
        parse_cpus(cpus) if cpus is not None else None,
        parse_pids(pids) if pids is not None else None,
    )
    quotas.require_ceilings(ctx, new)
    with app_lock(ctx, app.name):
        before = stored(ctx, app)
        after = {**before, key: new.over(before.get(key, Limits()))}
        quotas.require_room(ctx, app, quotas.running_formation(ctx, app), after)
        save(ctx, app, after)
        what = " ".join(f"{k}={v}" for k, v in new.as_dict().items() if v is not None)
        try:
            release = _redeploy(ctx, app, f"Limit {process_type or 'all'}: {what}", log)
        except PaasError:
            save(ctx, app, before)  # what runs keeps its limits; so does the store
            raise
        ctx.store.add_event(app.name, ctx.actor, "resource:limit", f"{process_type or 'all'} {what}")
        return release


def clear_limits(ctx: Context, app_name: str, process_type: str | None, log: BuildLog) -> Release | None:
    app = access.authorize(ctx, app_name, "resource:limit-clear")
    key = validation.process_type(process_type) if process_type else ALL_TYPES
    with app_lock(ctx, app.name):
        before = stored(ctx, app)
        if key not in before:
            raise PaasError(f"{app.name} has no limits set for {process_type or 'all process types'}")
        after = {t: lim for t, lim in before.items() if t != key}
        quotas.require_room(ctx, app, quotas.running_formation(ctx, app), after)  # the defaults may be more
        save(ctx, app, after)
        try:
            release = _redeploy(ctx, app, f"Clear limits of {process_type or 'all'}", log)
        except PaasError:
            save(ctx, app, before)
            raise
        ctx.store.add_event(app.name, ctx.actor, "resource:limit-clear", process_type or "all")
        return release


def report(ctx: Context, app_name: str) -> dict:
    app = access.authorize(ctx, app_name, "resource:report")
    base, per_type = effective(ctx, app)
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    types = sorted({*(build.processes if build else {}), *per_type} - {names.RELEASE_PROCESS})
    return {
        "defaults": defaults(ctx.settings).as_dict(),
        "app": base.as_dict(),
        "types": {t: per_type.get(t, base).as_dict() for t in types},
    }
