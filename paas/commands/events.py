"""events: the audit log."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, alias, command
from paas.core.validation import printable
from paas.services import events as events_service


@command("events", "Show the audit log: who changed what, when.")
@click.option("-n", "--num", "limit", type=int, default=50, help="How many events.")
@click.option("--app", help="Only this app's events.")
@FORMAT_OPTION
def events(env: CommandEnv, limit: int, app: str | None, fmt: str) -> None:
    rows = events_service.list_events(env.ctx, limit, app)
    if fmt == "json":
        env.json([{k: r[k] for k in ("id", "created_at", "user", "action", "app", "detail")} for r in rows])
        return
    for r in rows:
        # Names and details came from users (a login name, a domain): never raw on a terminal.
        user, action, app, detail = (printable(str(r[k] or "")) for k in ("user", "action", "app", "detail"))
        env.echo(f"{r['created_at']}  {user or '-':<12} {action:<18} {app or '-':<20} {detail}")


@command("events:on", "Dokku's switch: paas always records events, so this only says so.")
def events_on(env: CommandEnv) -> None:
    env.echo("-----> events are always recorded here (see: events)")


@command("events:off", "Dokku's switch: paas always records events; nothing is turned off.")
def events_off(env: CommandEnv) -> None:
    env.echo("-----> events are always recorded here; nothing to turn off")


alias("events:list", "events")
