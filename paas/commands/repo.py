"""repo:* commands."""

from __future__ import annotations

import click

from paas.commands import CommandEnv, command
from paas.services.repo import purge_cache


@command("repo:purge-cache", "Empty an app's build cache (pip/npm downloads); the next build starts cold.")
@click.argument("app")
def purge(env: CommandEnv, app: str) -> None:
    if purge_cache(env.ctx, app):
        env.echo(f"-----> Build cache of {app} purged")
    else:
        env.echo(f"-----> {app} has no build cache")
