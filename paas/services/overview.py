"""What the dashboard's app list shows: each app's status, process counts, release, URL.

One store query per kind of record and one Engine call for every container, whatever the
number of apps: the list must stay fast with a hundred of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paas.core.context import Context
from paas.scheduler import inventory
from paas.services import access, lookup
from paas.services.locks import is_held
from paas.store import App, Release

FAILED_STATES = ("restarting", "exited", "dead")


@dataclass(frozen=True)
class AppSummary:
    name: str
    status: str  # running, crashed, deploying, stopped, idle (scaled to zero), new (never deployed)
    processes: dict[str, tuple[int, int]] = field(default_factory=dict)  # type -> (running, wanted)
    release: int | None = None
    deployed_at: str | None = None
    url: str = ""
    created_at: str = ""

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "processes": {t: {"running": r, "wanted": w} for t, (r, w) in self.processes.items()},
            "release": self.release,
            "deployed_at": self.deployed_at,
            "url": self.url,
            "created_at": self.created_at,
        }


def status_of(
    app: App,
    release: Release | None,
    formation: dict[str, int],
    procs: list[inventory.ProcessRecord],
    deploying: bool,
) -> tuple[str, dict[str, tuple[int, int]]]:
    """The status rule, and (running, wanted) per process type of the current release."""
    wanted = dict(formation or (release.formation if release else {}))
    current = [p for p in procs if release is not None and p.release == release.version]
    counts = {
        t: (sum(1 for p in current if p.type == t and p.state == "running"), n) for t, n in wanted.items()
    }
    if app.stopped:
        return "stopped", counts
    if deploying:
        return "deploying", counts
    if release is None:
        return "new", counts
    if any(p.state in FAILED_STATES for p in current) or any(r < w for r, w in counts.values()):
        return "crashed", counts
    if not any(wanted.values()):
        return "idle", counts
    return "running", counts


def _deploying(ctx: Context, app: App, busy: set[int]) -> bool:
    # A pending build or release alone may be one a crash left behind: the lock tells.
    return app.id in busy and is_held(ctx, app.name)


def summaries(ctx: Context) -> list[AppSummary]:
    apps = lookup.list_apps(ctx)
    releases = ctx.store.current_releases()
    formations = ctx.store.all_formations()
    busy = ctx.store.busy_app_ids()
    by_app: dict[str, list[inventory.ProcessRecord]] = {}
    for p in inventory.processes(ctx.docker, ctx.settings.instance_id):
        by_app.setdefault(p.app, []).append(p)
    return [
        _summary(ctx, a, releases.get(a.id), formations.get(a.id, {}), by_app.get(a.name, []), busy)
        for a in apps
    ]


def summary(ctx: Context, name: str) -> AppSummary:
    app = access.authorize(ctx, name, "apps:info")
    procs = inventory.processes(ctx.docker, ctx.settings.instance_id, app.name)
    release = ctx.store.current_release(app.id)
    formation = ctx.store.get_formation(app.id)
    return _summary(ctx, app, release, formation, procs, ctx.store.busy_app_ids())


def _summary(
    ctx: Context,
    app: App,
    release: Release | None,
    formation: dict[str, int],
    procs: list[inventory.ProcessRecord],
    busy: set[int],
) -> AppSummary:
    status, counts = status_of(app, release, formation, procs, _deploying(ctx, app, busy))
    return AppSummary(
        name=app.name,
        status=status,
        processes=counts,
        release=release.version if release else None,
        deployed_at=release.created_at if release else None,
        url=lookup.app_url(ctx, app.name),
        created_at=app.created_at,
    )
