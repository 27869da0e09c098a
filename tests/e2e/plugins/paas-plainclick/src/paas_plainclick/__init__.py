"""A third-party plugin written with plain click: it prints with click.echo, click.secho and
print, and ends with click's exceptions, never touching the CommandEnv."""

from __future__ import annotations

import sys
import time

import click

from paas.commands import define
from paas.plugins import hookimpl


@click.command("plain:count")
@click.argument("word")
@click.option("--times", default=3)
def count(word: str, times: int) -> None:
    """Count slowly, so that two sessions counting at once interleave."""
    for i in range(times):
        click.echo(f"{word} {i}")
        time.sleep(0.002)
    click.secho(f"{word} done", fg="green")
    click.echo(f"{word} warned", err=True)


@define("plain:app", "Say the app's name.", permission="view")
@click.argument("app")
def app_name(env, app: str) -> None:
    print(f"app {app}")


@click.command("plain:end")
@click.argument("how")
def end(how: str) -> None:
    """End each way a click command can."""
    click.echo("started")
    if how == "exit":
        raise click.exceptions.Exit(3)
    if how == "abort":
        raise click.Abort()
    if how == "usage":
        raise click.UsageError("bad usage")
    if how == "sys":
        sys.exit(4)


@click.command("plain:ask")
def ask() -> None:
    """Ask over the session."""
    click.echo(f"hello {click.prompt('name')}")


@hookimpl
def paas_commands():
    return [count, app_name, end, ask]
