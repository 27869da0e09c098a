"""resource:limit, resource:limit-clear, resource:report (Dokku's names)."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import resources


def _done(env: CommandEnv, release: object) -> None:
    if release is None:
        env.echo("       Stored: applies when the app is deployed or started")


@command("resource:limit", "Limit memory, CPU or processes: resource:limit <app> --memory 512m --cpu 1.5.")
@click.argument("app")
@click.option("--process-type", "ptype", help="Only this process type (default: all of them).")
@click.option("--memory", help="Memory ceiling, e.g. 256m or 1g (no swap on top).")
@click.option("--cpu", "cpus", help="CPU cores, e.g. 0.5 or 1.5.")
@click.option("--pids", help="Most processes and threads at once, e.g. 256.")
def limit(
    env: CommandEnv, app: str, ptype: str | None, memory: str | None, cpus: str | None, pids: str | None
) -> None:
    release = resources.set_limits(env.ctx, app, ptype, memory, cpus, pids, env.progress())
    env.echo(f"-----> Resource limits of {app} ({ptype or 'all process types'}) set")
    _done(env, release)


@command("resource:limit-clear", "Back to the defaults: resource:limit-clear <app> [--process-type T].")
@click.argument("app")
@click.option("--process-type", "ptype", help="Only this process type's own limits.")
def limit_clear(env: CommandEnv, app: str, ptype: str | None) -> None:
    release = resources.clear_limits(env.ctx, app, ptype, env.progress())
    env.echo(f"-----> Resource limits of {app} ({ptype or 'all process types'}) cleared")
    _done(env, release)


@command("resource:report", "Show the limits each process type of an app runs with.")
@click.argument("app")
@FORMAT_OPTION
def report(env: CommandEnv, app: str, fmt: str) -> None:
    data = resources.report(env.ctx, app)
    if fmt == "json":
        env.json(data)
        return
    env.echo(f"=====> {app} resource limits")

    def row(name: str, lim: dict) -> None:
        cpus = lim["cpus"] if lim["cpus"] is not None else "-"
        env.echo(f"       {name:<12} memory={lim['memory'] or '-'} cpu={cpus} pids={lim['pids'] or '-'}")

    row("(defaults)", data["defaults"])
    row("(app)", data["app"])
    for ptype, lim in data["types"].items():
        row(ptype, lim)
