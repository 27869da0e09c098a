"""ps: what runs for an app, and restart/stop/start."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from paas.core import validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import access, quotas, schedulers
from paas.services.deploy import deploy_release, stop_timeout
from paas.services.locks import app_lock
from paas.services.routing import route_app


@dataclass(frozen=True)
class ProcessInfo:
    dyno: str
    type: str
    index: int
    state: str
    release: int
    started_at: str | None
    uptime_seconds: int | None
    restarts: int
    container: str
    node: str = ""  # the swarm node it runs on ("" on docker-local: this host)

    def as_json(self) -> dict:
        return asdict(self)


def list_processes(ctx: Context, app_name: str) -> list[ProcessInfo]:
    app = access.authorize(ctx, app_name, "ps")
    now = datetime.now(UTC)
    out = []
    for row in schedulers.for_app(ctx, app).rows(app.name):
        started = row.started_at
        out.append(
            ProcessInfo(
                dyno=f"{row.type}.{row.index}",
                type=row.type,
                index=row.index,
                state=row.state,
                release=row.release,
                started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ") if started else None,
                uptime_seconds=int((now - started).total_seconds()) if started else None,
                restarts=row.restarts,
                container=row.id,
                node=row.node,
            )
        )
    return sorted(out, key=lambda p: (p.type, p.index, p.release))


def restart(ctx: Context, app_name: str, ptype: str | None, log: BuildLog) -> None:
    """Fresh containers for the current release (all types, or one), swapped in without downtime."""
    app = access.authorize(ctx, app_name, "ps:restart")
    if ptype is not None:
        validation.process_type(ptype)
    with app_lock(ctx, app.name):
        release = ctx.store.current_release(app.id)
        if release is None:
            raise PaasError(f"{app.name} has not been deployed yet")
        if ptype is not None and ptype not in release.formation:
            raise PaasError(f"{app.name} has no process type {ptype}")
        formation = {**release.formation, **ctx.store.get_formation(app.id)}
        quotas.require_room(ctx, app, formation)  # a stopped app starts again
        deploy_release(
            ctx, app, replace(release, formation=formation), log, only_types={ptype} if ptype else None
        )
        ctx.store.add_event(app.name, ctx.actor, "ps:restart", ptype or "all")


def stop(ctx: Context, app_name: str, log: BuildLog) -> int:
    """Stop every process and take the route down; `ps:start` brings them back."""
    app = access.authorize(ctx, app_name, "ps:stop")
    with app_lock(ctx, app.name):
        scheduler = schedulers.for_app(ctx, app)
        handles = scheduler.processes(app.name)
        count = len(scheduler.rows(app.name))
        ctx.store.set_stopped(app.id, True)
        route_app(ctx, app.name, {})
        scheduler.stop(handles, timeout=stop_timeout(ctx, app))
        ctx.store.add_event(app.name, ctx.actor, "ps:stop")
        log.step(f"Stopped {count} process(es) of {app.name}")
        return count


def start(ctx: Context, app_name: str, log: BuildLog) -> None:
    app = access.authorize(ctx, app_name, "ps:start")
    with app_lock(ctx, app.name):
        release = ctx.store.current_release(app.id)
        if release is None:
            raise PaasError(f"{app.name} has not been deployed yet")
        formation = {**release.formation, **ctx.store.get_formation(app.id)}
        quotas.require_room(ctx, app, formation)
        deploy_release(ctx, app, replace(release, formation=formation), log)
        ctx.store.set_stopped(app.id, False)
        ctx.store.add_event(app.name, ctx.actor, "ps:start")
