"""Scale: the formation (process type -> count) is stored and survives deploys."""

from __future__ import annotations

from paas.core import names, validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import access, quotas
from paas.services.locks import app_lock
from paas.services.releases import default_formation, new_release
from paas.store import Release


def parse_scale_args(args: list[str]) -> dict[str, int]:
    """`web=3 worker=1` -> {"web": 3, "worker": 1}."""
    if not args:
        raise PaasError("give one or more TYPE=COUNT, e.g. web=2 worker=1")
    pairs: list[tuple[object, object]] = []
    for arg in args:
        ptype, sep, count = arg.partition("=")
        if not sep:
            raise PaasError(f"invalid scale {arg!r}: use TYPE=COUNT, e.g. web=2")
        pairs.append((ptype, validation.scale(count)))
    return check_changes(pairs)


def check_changes(pairs: list[tuple[object, object]]) -> dict[str, int]:
    """(process type, count) pairs, from the command line's `web=2` or the API's `{"type": "web",
    "quantity": 2}`: valid types, and counts that are whole numbers (not text) in range."""
    if not pairs:
        raise PaasError("give one or more TYPE=COUNT, e.g. web=2 worker=1")
    changes: dict[str, int] = {}
    for ptype, count in pairs:
        if not isinstance(ptype, str):
            raise PaasError('each update needs a process type: {"type": "web", "quantity": 2}')
        if isinstance(count, bool) or not isinstance(count, int):
            raise PaasError(
                f"the quantity of {ptype} must be a whole number from 0 to {validation.MAX_SCALE}"
            )
        changes[validation.process_type(ptype)] = validation.scale(count)
    return changes


def get_formation(ctx: Context, app_name: str) -> dict[str, int]:
    app = access.authorize(ctx, app_name, "ps")
    return ctx.store.get_formation(app.id)


def scale(ctx: Context, app_name: str, changes: dict[str, int], log: BuildLog) -> Release | None:
    app = access.authorize(ctx, app_name, "ps:scale")
    with app_lock(ctx, app.name):
        current = ctx.store.current_release(app.id)
        build = ctx.store.build_of(current)
        if build is None:
            build = ctx.store.latest_build(app.id)
        if names.RELEASE_PROCESS in changes:
            raise PaasError(
                f"{names.RELEASE_PROCESS} runs once per release, before its processes start; it is not scaled"
            )
        if build is None:  # nothing built yet: stored as asked, for the types the first build has
            formation = {**ctx.store.get_formation(app.id), **changes}
        else:
            known = default_formation(build.processes, {})
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
            quotas.require_room(ctx, app, formation)
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
