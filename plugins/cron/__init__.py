"""cron: Dokku-style scheduled commands from app.json (`"cron": [{"command", "schedule"}]`).

Schedules are checked at push time (a bad one refuses the push, naming its index); the server's
reconcile pass starts the runs that are due, each in a one-off container of the current release.
`cron:list <app>` shows the jobs and their ids, `cron:run <app> <id>` runs one now, and `logs <app>
-p cron` shows each job's last run. The timing rules (once per tick, no replay after a restart, no
overlap) are in ticker.py; the containers in runs.py.
"""

from __future__ import annotations

import click

from paas.plugin_api import BuildLog, Context, PushedSource, access, declare_permissions, hookimpl

from . import service
from .commands import cron_list, cron_run

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules.
access.declare_entries(
    __name__,
    {
        "jobs": dict.fromkeys(("job_id", "check_id", "entries", "parse_entries"), access.PURE),
        "runs": dict.fromkeys(
            ("containers", "is_running", "last_run", "run_job", "remove_stale"), access.INTERNAL
        ),
        "service": {
            **dict.fromkeys(("jobs_of", "scheduler", "reconcile", "find_job"), access.INTERNAL),
            "check_manifest": access.PURE,
            "list_jobs": "cron:list",
            "run_now": "cron:run",
        },
        "ticker": {"utcnow": access.PURE, "iso": access.PURE, "load_state": access.INTERNAL},
    },
)
declare_permissions([cron_list, cron_run])


@hookimpl
def paas_commands() -> list[click.Command]:
    return [cron_list, cron_run]


@hookimpl
def paas_app_json_keys() -> list[str]:
    return ["cron"]


@hookimpl
def paas_pre_build(source: PushedSource, log: BuildLog) -> None:
    jobs = service.check_manifest(source.manifest.data)
    if jobs:
        log.step(f"Cron: {len(jobs)} job(s) in app.json ({', '.join(j.id for j in jobs)})")


@hookimpl
def paas_reconcile(ctx: Context) -> None:
    service.reconcile(ctx)  # reads the apps itself: the pass's list may be minutes old (stops, renames)
