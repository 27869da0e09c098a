"""Scale: the formation (process type -> count) is stored and survives deploys."""

from __future__ import annotations

from paas.core import validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import access
from paas.services.locks import app_lock
from paas.services.releases import new_release
from paas.store import Release

NOT_SCALABLE = {"release": "release runs once per release, before its processes start; it is not scaled"}


def default_formation(
    processes: dict[str, str], stored: dict[str, int], manifest: dict[str, int] | None = None
) -> dict[str, int]:
    """Stored scale for known types; a type new to the app gets app.json's `formation` quantity,
    else web=1 and 0 for the rest (as Heroku). Types the build no longer has are dropped."""
    manifest = manifest or {}
    return {
        t: stored.get(t, manifest.get(t, 1 if t == "web" else 0))
        for t in sorted(processes)
        if t not in NOT_SCALABLE
    }


def parse_scale_args(args: list[str]) -> dict[str, int]:
    """`web=3 worker=1` -> {"web": 3, "worker": 1}."""
    if not args:
        raise PaasError("give one or more TYPE=COUNT, e.g. web=2 worker=1")
    changes: dict[str, int] = {}
    for arg in args:
        ptype, sep, count = arg.partition("=")
        if not sep:
            raise PaasError(f"invalid scale {arg!r}: use TYPE=COUNT, e.g. web=2")
        changes[validation.process_type(ptype)] = validation.scale(count)
    return changes


def get_formation(ctx: Context, app_name: str) -> dict[str, int]:
    app = access.authorize(ctx, app_name, "ps")
    return ctx.store.get_formation(app.id)


def scale(ctx: Context, app_name: str, changes: dict[str, int], log: BuildLog) -> Release | None:
    app = access.authorize(ctx, app_name, "ps:scale")
    with app_lock(ctx, app.name):
        current = ctx.store.current_release(app.id)
        build = ctx.store.get_build(current.build_id) if current and current.build_id else None
        if build is None:
            build = ctx.store.latest_build(app.id)
        for ptype in changes:
            if ptype in NOT_SCALABLE:
                raise PaasError(NOT_SCALABLE[ptype])
        if build is None:  # nothing built yet: stored as asked, for the types the first build has
            formation = {**ctx.store.get_formation(app.id), **changes}
        else:
            known = {t: c for t, c in build.processes.items() if t not in NOT_SCALABLE}
            unknown = sorted(set(changes) - set(known))
            if unknown:
                offer = ", ".join(sorted(known)) or "none"
                raise PaasError(f"{app.name} has no process type {', '.join(unknown)} (types: {offer})")
            formation = {
                **{t: n for t, n in ctx.store.get_formation(app.id).items() if t in known},
                **changes,
            }
        description = "Scale " + " ".join(f"{t}={n}" for t, n in sorted(changes.items()))
        release = None
        if current is not None and not app.stopped:
            release = new_release(
                ctx,
                app,
                build_id=current.build_id,
                config=ctx.store.get_config(app.id),
                formation=formation,
                description=description,
                log=log,
            )
        ctx.store.set_formation(app.id, formation)
        ctx.store.add_event(app.name, ctx.actor, "ps:scale", description)
        return release
