"""The cron plugin's rules: which jobs an app has, the reconcile pass, cron:list and cron:run.

An app's jobs are the `cron` entries of the app.json kept with its current release's build, so a
rollback brings back the schedules of the code it runs. A stopped app (ps:stop) runs none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from paas.plugin_api import App, Context, NotFound, PaasError, access
from paas.store import Build

from . import runs
from .jobs import Job, check_id, entries, parse_entries
from .ticker import Scheduler, iso, load_state, utcnow

log = logging.getLogger("paas.cron")
CLEANUP_SECONDS = 60
_SCHEDULER = "cron:scheduler"
_JOBS = "cron:jobs"


def jobs_of(ctx: Context, app: App) -> list[Job]:
    """The jobs of the app's current release (none before its first deploy)."""
    release = ctx.store.current_release(app.id)
    return _build_jobs(ctx, app, release.build_id if release is not None else None)


def _build_jobs(ctx: Context, app: App, build_id: int | None) -> list[Job]:
    if not build_id:
        return []
    known = ctx.shared(_JOBS, dict)  # build id -> its jobs: a build's app.json never changes
    if build_id not in known:
        known[build_id] = _parse(app, ctx.store.get_build(build_id))
    return known[build_id]


def _parse(app: App, build: Build | None) -> list[Job]:
    if build is None or not build.manifest:
        return []
    try:
        return parse_entries(entries(build.manifest))
    except PaasError as exc:  # pushed before this plugin checked it: nothing runs, cron:list says why
        log.debug("cron: %s: %s", app.name, exc)
        return []


def check_manifest(data: dict) -> list[Job]:
    """At push time: a bad entry or schedule refuses the push, naming the entry's index."""
    return parse_entries(entries(data))


def scheduler(ctx: Context, clock: Callable[[], datetime] = utcnow) -> Scheduler:
    """The process's scheduler, made on the server's first reconcile pass."""
    return ctx.shared(
        _SCHEDULER,
        lambda: Scheduler(
            ctx.store,
            launch=lambda app, job: runs.run_job(ctx, app, job),
            clock=clock,
            busy_elsewhere=lambda app, job: runs.is_running(ctx, app, job),
        ),
    )


def reconcile(ctx: Context) -> list[str]:
    """Start the runs that are due (in threads) and, now and then, drop stale run containers.
    Every app's current release is read at once and each build's jobs parsed once (per app and
    pass, a release, its build and its app.json had been read: 7% of an idle server's CPU with
    200 apps, py-spy); only the build ids of the current releases are read, not the releases."""
    current = ctx.store.current_build_ids()
    apps = [
        (app, [] if app.stopped else _build_jobs(ctx, app, current.get(app.id)))
        for app in ctx.store.list_apps()
    ]
    known = ctx.shared(_JOBS, dict)
    for build_id in set(known) - set(current.values()):
        del known[build_id]  # a build no app runs any more: nothing grows with time
    sched = scheduler(ctx)
    actions = sched.tick(apps)
    last_cleanup = ctx.shared("cron:cleanup", lambda: [0.0])
    now = sched.clock().timestamp()
    if now - last_cleanup[0] >= CLEANUP_SECONDS:
        last_cleanup[0] = now
        keep = {(app.name, job.id) for app, jobs in apps for job in jobs}
        removed = runs.remove_stale(ctx, keep)
        if removed:
            actions.append(f"removed {removed} finished cron container(s) of jobs that are gone")
    return actions


def find_job(ctx: Context, app: App, job_id: str) -> Job:
    check_id(job_id)
    for job in jobs_of(ctx, app):
        if job.id == job_id:
            return job
    raise NotFound(f"{app.name} has no cron job {job_id} (see cron:list {app.name})")


def list_jobs(ctx: Context, app_name: str, now: datetime | None = None) -> list[dict]:
    """What cron:list shows, with stable keys (also the JSON shape)."""
    app = access.authorize(ctx, app_name, "cron:list")
    now = now or utcnow()
    handled = load_state(ctx.store, app)
    rows = []
    for job in jobs_of(ctx, app):
        last = runs.last_run(ctx, app.name, job.id)
        rows.append(
            {
                "id": job.id,
                "schedule": job.schedule,
                "command": job.command,
                "last_tick": iso(handled[job.id]) if job.id in handled else None,
                "last_run": None
                if last is None
                else {
                    "started_at": last.started_at,
                    "finished_at": last.finished_at,
                    "status": last.status,
                    "release": last.release,
                },
                "next_run": None if app.stopped else iso(job.next_after(now)),
            }
        )
    return rows


def run_now(ctx: Context, app_name: str, job_id: str, emit: Callable[[str], None]) -> int:
    """cron:run: the job in a one-off container now, output streamed; its own schedule is untouched."""
    app = access.authorize(ctx, app_name, "cron:run")
    job = find_job(ctx, app, job_id)
    ctx.store.add_event(app.name, ctx.actor, "cron:run", job.id)
    return runs.run_job(ctx, app, job, emit, actor=ctx.actor or "paas")
