"""maintenance:on, maintenance:off, maintenance:report: parse and render; rules are in service.py."""

from __future__ import annotations

from collections.abc import Callable

import click

from paas.plugin_api import FORMAT_OPTION, CommandEnv, define

from . import service


def _waiting(env: CommandEnv, app: str) -> Callable[[], None]:
    """Said when another deploy of the app holds its lock (the switch waits for it)."""
    return lambda: env.echo(f"       waiting for a running deploy of {app}")


@define(
    "maintenance:on",
    "Answer every request for the app with 503 and a maintenance page.",
    permission="operate",
)
@click.argument("app")
def maintenance_on(env: CommandEnv, app: str) -> None:
    changed, page = service.enable(env.ctx, app, on_wait=_waiting(env, app))
    env.echo(f"-----> Maintenance mode {'enabled' if changed else 'was already on'} for {app}")
    env.echo(f"       The router answers 503, {page.detail}")


@define("maintenance:off", "Route the app's requests to its processes again.", permission="operate")
@click.argument("app")
def maintenance_off(env: CommandEnv, app: str) -> None:
    changed = service.disable(env.ctx, app, on_wait=_waiting(env, app))
    env.echo(f"-----> Maintenance mode {'disabled' if changed else 'was already off'} for {app}")


@define("maintenance:report", "Show whether maintenance mode is on, for one app or all.", permission="view")
@click.argument("app", required=False)
@FORMAT_OPTION
def maintenance_report(env: CommandEnv, app: str | None, fmt: str) -> None:
    rows = service.report(env.ctx, app)
    if fmt == "json":
        data = {s.app: {"enabled": s.enabled} for s in rows}
        env.json(data[app] if app is not None else data)
        return
    if not rows:
        env.echo("no apps")
    for s in rows:
        env.echo(f"=====> {s.app} maintenance information")
        env.echo(f"       Maintenance enabled:           {str(s.enabled).lower()}")
