"""apps:* commands."""

from __future__ import annotations

import json

import click

from paas.commands import CommandEnv, command
from paas.services import apps as apps_service


@command("apps:create", "Create an app (a first git push creates it too).")
@click.argument("app")
def create(env: CommandEnv, app: str) -> None:
    created = apps_service.create_app(env.ctx, app)
    env.echo(f"-----> Created {created.name}")
    env.echo(f"       git remote add paas paas:{created.name}")


@command("apps:list", "List the apps.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_(env: CommandEnv, fmt: str) -> None:
    apps = apps_service.list_apps(env.ctx)
    if fmt == "json":
        env.echo(json.dumps([{"name": a.name, "created_at": a.created_at} for a in apps]))
        return
    env.echo("=====> My Apps")
    for a in apps:
        env.echo(a.name)
