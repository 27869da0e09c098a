"""`help` and `<namespace>:help`: every command with a one-line description; aliases say of what."""

from __future__ import annotations

import click

from paas.commands import CommandEnv, available, command


@command("help", "List the commands, or those of one namespace (help apps).")
@click.argument("namespace", required=False)
def help_(env: CommandEnv, namespace: str | None) -> None:
    commands = available(env.on_host, env.ctx.plugins)
    names = sorted(n for n in commands if n != "help")
    if namespace:
        names = [n for n in names if n.split(":")[0] == namespace]
        if not names:
            raise click.UsageError(f"no commands in namespace {namespace!r}")
    width = max((len(n) for n in names), default=10) + 2
    env.echo("Usage: ssh paas <command> [args]   (on the server: paas <command> [args])")
    env.echo("")
    for n in names:
        target = commands[n].alias_of
        doc = f"alias of {target}" if target else (commands[n].command.help or "").strip().splitlines()[0]
        env.echo(f"  {n.ljust(width)}{doc}")
