"""repo:* commands, and cleanup."""

from __future__ import annotations

import click

from paas.commands import CommandEnv, command
from paas.services import gc as gc_service
from paas.services import repo as repo_service


@command("repo:purge-cache", "Empty an app's build cache (pip/npm downloads); the next build starts cold.")
@click.argument("app")
def purge(env: CommandEnv, app: str) -> None:
    if repo_service.purge_cache(env.ctx, app):
        env.echo(f"-----> Build cache of {app} purged")
    else:
        env.echo(f"-----> {app} has no build cache")


@command("repo:gc", "Pack an app's repository and drop objects nothing refers to (git gc).")
@click.argument("app")
def gc(env: CommandEnv, app: str) -> None:
    stats = repo_service.gc(env.ctx, app)
    env.echo(f"-----> Repository of {app}: {stats['packs']} pack(s), {stats['pruned']} object(s) pruned")


@command("cleanup", "Remove an app's (or, for admins, every app's) old images now, as a deploy does.")
@click.argument("app", required=False)
def cleanup(env: CommandEnv, app: str | None) -> None:
    removed = gc_service.cleanup(env.ctx, app)
    env.echo(f"-----> Cleaned up: {len(removed)} image(s) removed")
