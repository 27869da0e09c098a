"""scheduler:set, scheduler:report: which scheduler (docker-local or swarm) runs an app."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import moves
from paas.services import schedulers as schedulers_service


@command("scheduler:set", "Move an app to swarm or docker-local without downtime.")
@click.argument("app")
@click.argument("scheduler")
def set_scheduler(env: CommandEnv, app: str, scheduler: str) -> None:
    moves.set_scheduler(env.ctx, app, scheduler, env.progress())


@command("scheduler:report", "Show which scheduler runs an app (and the default for new apps).")
@click.argument("app")
@FORMAT_OPTION
def report(env: CommandEnv, app: str, fmt: str) -> None:
    data = schedulers_service.report(env.ctx, app)
    if fmt == "json":
        env.json(data)
        return
    env.echo(f"=====> {app} scheduler")
    env.echo(f"scheduler: {data['scheduler']}")
    env.echo(f"default for new apps: {data['default']}")
