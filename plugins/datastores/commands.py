"""The commands of a datastore kind (`postgres:*`, `redis:*`), made for its kind.

Parse and render only: the rules are in service.py. Each kind's plugin calls
`commands_for(kind)` when it is loaded, so every namespace behaves alike: `postgres:link` is
`commands_for(postgres.KIND)`'s `link`. Who may run each is declared here, with `define`, and
joins the permission table (paas/services/access.py) when the plugin is imported: `<kind>:create`
and `<kind>:list` any user (`user`; PAAS_SERVICE_CREATE and the `services` quota decide who may
create), `<kind>:link`/`<kind>:unlink` `manage` on the app and the service's owner, every other
command the service's owner (`owned`); admins may do everything. Dumps go
out and come in as raw bytes on the session's stdio (`ssh paas postgres:export db > db.dump`).
"""

from __future__ import annotations

import click

from paas.plugin_api import FORMAT_OPTION, CommandEnv, PaasError, define

from . import service as backing
from .service import Kind


def _stdio(env: CommandEnv, what: str):  # type: ignore[no-untyped-def]
    if env.stdio is None:
        raise PaasError(f"{what} needs a terminal or an SSH session")
    return env.stdio


def _table(env: CommandEnv, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        env.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def commands_for(kind: Kind, with_backups: bool = True) -> list[click.Command]:
    ns = kind.name
    title = kind.title

    @define(f"{ns}:create", f"Create a {title} service: {ns}:create <name>.", permission="user")
    @click.argument("name")
    def create(env: CommandEnv, name: str) -> None:
        backing.create(env.ctx, kind, name, env.progress())

    @define(
        f"{ns}:destroy", f"Destroy a {title} service (not while linked); a final backup is kept.", owned=True
    )
    @click.argument("name")
    @click.option("--confirm", default=None, help="The service's name, to confirm.")
    @click.option("--no-backup", is_flag=True, help="Keep no final backup.")
    def destroy(env: CommandEnv, name: str, confirm: str | None, no_backup: bool) -> None:
        backing.destroy(env.ctx, kind, name, confirm, not no_backup, env.progress())

    @define(f"{ns}:list", f"List the {title} services: name, state, linked apps.", permission="user")
    @FORMAT_OPTION
    def list_(env: CommandEnv, fmt: str) -> None:
        rows = backing.list_services(env.ctx, kind)
        if fmt == "json":
            env.json(rows)
            return
        if not rows:
            env.echo(f"no {ns} services")
            return
        _table(
            env,
            ("NAME", "STATE", "LINKED APPS", "CREATED"),
            [(r["name"], r["state"], ",".join(r["links"]) or "-", r["created_at"]) for r in rows],
        )

    @define(
        f"{ns}:info",
        f"A {title} service: state, URL (the password for admins only), links, backups.",
        owned=True,
    )
    @click.argument("name")
    @FORMAT_OPTION
    def info(env: CommandEnv, name: str, fmt: str) -> None:
        data = backing.info(env.ctx, kind, name)
        if fmt == "json":
            env.json(data)
            return
        for key in ("name", "state", "url", "host", "created_at", "container", "volume", "image", "backups"):
            env.echo(f"{key + ':':<14}{data[key] if data[key] is not None else '-'}")
        links = ", ".join(f"{lk['app']} ({lk['config_var']})" for lk in data["links"]) or "-"
        env.echo(f"{'links:':<14}{links}")
        if with_backups:
            schedule = data["backup_schedule"] or "-"
            if data["backup_keep"]:
                schedule += f" (keep {data['backup_keep']})"
            env.echo(f"{'schedule:':<14}{schedule}")

    @define(
        f"{ns}:link",
        f"Link a {title} service to an app: sets {kind.env_var} (or NAME_URL with --alias NAME); "
        "a new release and a restart without downtime.",
        permission="manage",
        owned=True,
    )
    @click.argument("name")
    @click.argument("app")
    @click.option("--alias", default=None, help="Set NAME_URL instead of " + kind.env_var + ".")
    def link(env: CommandEnv, name: str, app: str, alias: str | None) -> None:
        backing.link(env.ctx, kind, name, app, alias, env.progress())
        env.echo(f"{ns} service {name} linked to {app}")

    @define(
        f"{ns}:unlink",
        f"Unlink a {title} service from an app (unsets its URL: a new release).",
        permission="manage",
        owned=True,
    )
    @click.argument("name")
    @click.argument("app")
    def unlink(env: CommandEnv, name: str, app: str) -> None:
        backing.unlink(env.ctx, kind, name, app, env.progress())
        env.echo(f"{ns} service {name} unlinked from {app}")

    @define(
        f"{ns}:connect",
        f"A {title} shell on the service (interactive with ssh -t).",
        owned=True,
        terminal=True,
    )
    @click.argument("name")
    def connect(env: CommandEnv, name: str) -> int:
        stdio = _stdio(env, f"{ns}:connect")
        pty = stdio.pty
        size = (pty[1], pty[2]) if pty and pty[1] and pty[2] else None
        return backing.connect(
            env.ctx,
            kind,
            name,
            stdio.write,
            stdio.write_err,
            stdio.read,
            pty is not None,
            size,
            stdio.disconnected,
        )

    @define(f"{ns}:export", f"The {title} service's dump on stdout.", owned=True)
    @click.argument("name")
    def export(env: CommandEnv, name: str) -> None:
        stdio = _stdio(env, f"{ns}:export")
        backing.export(env.ctx, kind, name, stdio.write)

    @define(
        f"{ns}:import",
        f"Replace the {title} service's data with a dump read from stdin (all or nothing).",
        owned=True,
    )
    @click.argument("name")
    def import_(env: CommandEnv, name: str) -> None:
        stdio = _stdio(env, f"{ns}:import")
        backing.import_(env.ctx, kind, name, stdio.read)
        env.echo(f"imported into {ns} service {name}")

    out = [create, destroy, list_, info, link, unlink, connect, export, import_]
    if not with_backups:
        return out

    @define(
        f"{ns}:backup", f"Back the {title} service up now (kept under the data dir, checksummed).", owned=True
    )
    @click.argument("name")
    def backup(env: CommandEnv, name: str) -> None:
        done = backing.backup(env.ctx, kind, name)
        env.echo(f"{done.id}  {_size(done.size)}  sha256:{done.sha256}")

    @define(f"{ns}:backups", f"List the {title} service's backups: id, size, time.", owned=True)
    @click.argument("name")
    @FORMAT_OPTION
    def backups(env: CommandEnv, name: str, fmt: str) -> None:
        found = backing.list_backups(env.ctx, kind, name)
        if fmt == "json":
            env.json([b.__dict__ for b in found])
            return
        if not found:
            env.echo(f"{ns} service {name} has no backups")
            return
        _table(env, ("ID", "SIZE", "CREATED"), [(b.id, _size(b.size), b.created_at) for b in found])

    @define(
        f"{ns}:restore",
        f"Restore the {title} service from one of its backups (checksum verified).",
        owned=True,
    )
    @click.argument("name")
    @click.argument("backup_id", metavar="BACKUP")
    def restore(env: CommandEnv, name: str, backup_id: str) -> None:
        backing.restore(env.ctx, kind, name, backup_id)
        env.echo(f"{ns} service {name} restored from {backup_id}")

    @define(
        f"{ns}:backup-schedule",
        f'Back the {title} service up on a cron schedule (UTC): {ns}:backup-schedule <name> "0 3 * * *" '
        "[--keep N]; `off` stops it.",
        owned=True,
    )
    @click.argument("name")
    @click.argument("schedule")
    @click.option("--keep", type=int, default=None, help="How many scheduled backups to keep.")
    def backup_schedule(env: CommandEnv, name: str, schedule: str, keep: int | None) -> None:
        record = backing.set_schedule(env.ctx, kind, name, schedule, keep)
        if record.schedule is None:
            env.echo(f"{ns} service {name}: no scheduled backups")
        else:
            env.echo(
                f"{ns} service {name}: backups at {record.schedule!r} (UTC)"
                + (f", keep {keep}" if keep else "")
            )

    @define(f"{ns}:logs", f"The {title} service's log lines.", owned=True)
    @click.argument("name")
    @click.option("-n", "--num", "lines", type=int, default=100, help="How many lines.")
    def logs(env: CommandEnv, name: str, lines: int) -> None:
        for line in backing.logs(env.ctx, kind, name, lines):
            env.echo(line)

    return [*out, backup, backups, restore, backup_schedule, logs]
