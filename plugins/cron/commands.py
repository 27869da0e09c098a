"""cron:list and cron:run: parse and render only (the rules are in service.py)."""

from __future__ import annotations

import click

from paas.plugin_api import FORMAT_OPTION, CommandEnv, PaasError, define

from . import service


def _last(row: dict) -> str:
    last = row["last_run"]
    if last is None:
        return "-"
    if last["status"] is None:
        return f"running since {last['started_at']}"
    return f"{last['started_at']} (exit {last['status']})"


@define(
    "cron:list",
    "List an app's cron jobs (app.json `cron`): id, schedule, command, last and next run.",
    permission="view",
)
@click.argument("app")
@FORMAT_OPTION
def cron_list(env: CommandEnv, app: str, fmt: str) -> None:
    rows = service.list_jobs(env.ctx, app)
    if fmt == "json":
        env.json(rows)
        return
    if not rows:
        env.echo(f"{app} has no cron jobs in the app.json of its current release")
        return
    header = ("ID", "SCHEDULE", "LAST RUN", "NEXT RUN (UTC)", "COMMAND")
    table = [header] + [
        (r["id"], r["schedule"], _last(r), r["next_run"] or "- (stopped)", r["command"]) for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        env.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + "  " + line[-1])


@define(
    "cron:run",
    "Run one of an app's cron jobs now, in a one-off container; its output streams back.",
    permission="deploy",
)
@click.argument("app")
@click.argument("job_id")
def cron_run(env: CommandEnv, app: str, job_id: str) -> None:
    status = service.run_now(env.ctx, app, job_id, env.echo)
    if status != 0:
        raise PaasError(f"cron job {job_id} exited with status {status}")
