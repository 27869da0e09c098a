"""backup:* commands: parse and render only (the rules are in service.py). Admins only: the
plugin declares no permission, so the command table refuses everyone else, and the service
checks again at its entry."""

from __future__ import annotations

from dataclasses import asdict

import click

from paas.plugin_api import FORMAT_OPTION, BuildLog, CommandEnv, PaasError, define

from . import service
from .restic import mib

TARGET_HELP = "A restic repository: a folder, sftp:, s3: or rest: (default: PAAS_BACKUP_TARGET)."
TO = click.option("--to", "target", metavar="TARGET", help=TARGET_HELP)
FROM = click.option("--from", "target", metavar="TARGET", help=TARGET_HELP)


@define(
    "backup:create",
    "Back up the whole platform (store, repos, users, keys, certificates, storage, services' data).",
    permission="admin",
)
@TO
def create(env: CommandEnv, target: str | None) -> None:
    done = service.create(env.ctx, target, env.progress())
    env.echo(
        f"=====> Backup {done.id} of {done.apps} app(s) in {done.target}: {done.files} files, "
        f"{mib(done.bytes_read)} read, {mib(done.bytes_added)} added, in {done.seconds} s"
    )


@define("backup:list", "List the platform's backups in a target, newest first.", permission="admin")
@FROM
@FORMAT_OPTION
def list_(env: CommandEnv, target: str | None, fmt: str) -> None:
    snapshots = service.list_backups(env.ctx, target)
    failure = service.schedule_line(service.schedule(env.ctx, None, None, None))
    if fmt == "json":
        env.json(
            [{"id": s.short_id, "time": s.time, "host": s.hostname, "tags": list(s.tags)} for s in snapshots]
        )
        return
    if failure:
        env.err.write(f"warning: {failure}\n")
    if not snapshots:
        env.echo("no backups there yet (backup:create makes one)")
        return
    env.echo(f"{'ID':<10}{'TIME (UTC)':<22}{'HOST':<20}KIND")
    for s in snapshots:
        kind = "scheduled" if "scheduled" in s.tags else "manual"
        env.echo(f"{s.short_id:<10}{s.time[:19].replace('T', ' '):<22}{s.hostname[:19]:<20}{kind}")


@define(
    "backup:verify",
    "Check a backup: restic check, then restore it into a scratch folder and verify every file.",
    permission="admin",
)
@click.argument("backup_id", metavar="ID")
@FROM
def verify(env: CommandEnv, backup_id: str, target: str | None) -> None:
    result = service.verify(env.ctx, backup_id, target, env.progress())
    env.echo(
        f"=====> Backup {backup_id} is intact: {result['checksums']} checksums match, "
        f"{mib(result['bytes'])}, apps: {', '.join(result['apps']) or 'none'} "
        f"(taken on {result['hostname']} at {result['created_at']})"
    )


@define(
    "backup:restore",
    "Restore the whole platform from a backup (a new server), or one app with --app.",
    permission="admin",
)
@click.argument("backup_id", metavar="ID")
@FROM
@click.option("--force", is_flag=True, help="Destroy the apps here (or the app named by --app) first.")
@click.option("--app", "app", metavar="APP", help="Restore only this app and its services here.")
@FORMAT_OPTION
def restore(
    env: CommandEnv, backup_id: str, target: str | None, force: bool, app: str | None, fmt: str
) -> None:
    force = force or bool(env.extras.get("force"))
    progress = env.progress() if fmt != "json" else BuildLog(lambda line: env.err.write(line))
    report = service.restore(env.ctx, backup_id, target, force, app, progress)
    if fmt == "json":
        env.json(asdict(report))
    else:
        env.echo(f"=====> Restore of {backup_id} ({report.seconds} s):")
        for o in report.outcomes:
            env.echo(f"       {'ok    ' if o.ok else 'FAILED'}  {o.part}: {o.detail}")
        if not app:
            env.echo("       restart paas server (systemctl restart paas): the restored SSH host key and")
            env.echo("       dashboard session key are used from its next start")
    if report.failed:
        raise PaasError(
            f"restore incomplete: {len(report.failed)} part(s) did not come back: "
            + ", ".join(o.part for o in report.failed)
        )


@define(
    "backup:schedule",
    "Back up on a cron schedule (UTC): backup:schedule '<cron>' [--keep N] [--to TARGET], or off.",
    permission="admin",
)
@click.argument("cron", required=False)
@click.option("--keep", type=int, help="Keep the newest N scheduled backups (older ones are pruned).")
@TO
def schedule(env: CommandEnv, cron: str | None, keep: int | None, target: str | None) -> None:
    data = service.schedule(env.ctx, cron, keep, target)
    if cron is not None and cron.strip() == "off":
        env.echo("-----> Scheduled backups stopped")
        return
    if not data.get("schedule"):
        env.echo("no backup schedule (backup:schedule '0 3 * * *' --keep 7 sets one)")
        return
    keep_text = f", keeping the newest {data['keep']}" if data.get("keep") else ""
    env.echo(f"-----> Backups at '{data['schedule']}' (UTC) to {data.get('target')}{keep_text}")
    if data.get("last_success"):
        s = data["last_success"]
        env.echo(f"       last scheduled backup: {s['id']} at {s['at']} ({s['seconds']} s)")
    failure = service.schedule_line(data)
    if failure:
        env.echo(f" !     {failure}")


COMMANDS = [create, list_, verify, restore, schedule]
