"""url, urls (Dokku's): where an app answers."""

from __future__ import annotations

import click

from paas.commands import CommandEnv, command
from paas.services import lookup


@command("url", "Print the app's URL (Dokku's).")
@click.argument("app")
def url(env: CommandEnv, app: str) -> None:
    env.echo(lookup.app_url(env.ctx, lookup.get_app(env.ctx, app).name))


@command("urls", "Print every URL of the app: its default name and its custom domains.")
@click.argument("app")
def urls(env: CommandEnv, app: str) -> None:
    for u in lookup.app_urls(env.ctx, lookup.get_app(env.ctx, app).name):
        env.echo(u)
