"""domains, domains:add, domains:remove, domains:set, domains:clear."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, alias, command
from paas.services import domains as domains_service
from paas.services import lookup


def _show(env: CommandEnv, app: str, domains: list[str]) -> None:
    default = lookup.app_url(env.ctx, app).split("//", 1)[1].split(":")[0]
    env.echo(f"=====> {app} domains")
    env.echo(f"{default} (default)")
    for d in domains:
        env.echo(d)


@command("domains", "List an app's domains (alias domains:report).")
@click.argument("app")
@FORMAT_OPTION
def report(env: CommandEnv, app: str, fmt: str) -> None:
    domains = domains_service.list_domains(env.ctx, app)
    if fmt == "json":
        env.json(domains)
        return
    _show(env, app, domains)


@command("domains:add", "Route more domains to an app.")
@click.argument("app")
@click.argument("domains", nargs=-1, required=True)
def add(env: CommandEnv, app: str, domains: tuple[str, ...]) -> None:
    _show(env, app, domains_service.add_domains(env.ctx, app, list(domains)))


@command("domains:remove", "Stop routing domains to an app.")
@click.argument("app")
@click.argument("domains", nargs=-1, required=True)
def remove(env: CommandEnv, app: str, domains: tuple[str, ...]) -> None:
    _show(env, app, domains_service.remove_domains(env.ctx, app, list(domains)))


@command("domains:set", "Replace an app's domains.")
@click.argument("app")
@click.argument("domains", nargs=-1, required=True)
def set_(env: CommandEnv, app: str, domains: tuple[str, ...]) -> None:
    _show(env, app, domains_service.set_domains(env.ctx, app, list(domains)))


@command("domains:clear", "Remove every custom domain of an app.")
@click.argument("app")
def clear(env: CommandEnv, app: str) -> None:
    _show(env, app, domains_service.clear_domains(env.ctx, app))


alias("domains:report", "domains")
