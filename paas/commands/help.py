"""`help`, `<namespace>:help` and `<namespace>`: commands with a one-line description; `version`."""

from __future__ import annotations

from importlib import metadata

import click

from paas.commands import CommandEnv, available, command

# What each namespace is for, in Dokku's words where Dokku has the namespace (scripts match them).
NAMESPACES = {
    "access": "Manage who may do what with an app",
    "app-json": "Manage app.json settings for an app",
    "apps": "Manage apps",
    "builder": "Manage builder settings for an app",
    "builder-herokuish": "Manage the buildpack (herokuish) builder settings for an app",
    "buildpacks": "Manage buildpacks settings for an app",
    "builds": "Show the output of an app's builds",
    "certs": "Manage SSL (TLS) certs",
    "checks": "Manage zero-downtime settings",
    "config": "Manage global and app-specific config vars",
    "domains": "Manage vhost domains used by the proxy",
    "events": "Show the audit log of what changed",
    "git": "Manage app deploys via git",
    "logs": "Manage log integration for an app",
    "nginx": "Manage the nginx proxy",
    "ps": "Manage app processes",
    "releases": "Manage an app's releases",
    "repo": "Manage the app's repo",
    "resource": "Manage resource settings for an app",
    "run": "Run a one-off process inside a container",
    "scheduler": "Manage scheduler settings",
    "storage": "Manage mounted volumes",
}


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
    if namespace:
        env.echo(NAMESPACES.get(namespace, f"The {namespace} commands"))
        env.echo("")
    for n in names:
        target = commands[n].alias_of
        doc = f"alias of {target}" if target else (commands[n].command.help or "").strip().splitlines()[0]
        env.echo(f"  {n.ljust(width)}{doc}")


@command("version", "Show the version of paas (also -v, --version).")
def version(env: CommandEnv) -> None:
    env.echo(f"paas {metadata.version('paas')}")
