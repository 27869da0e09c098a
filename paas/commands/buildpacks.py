"""buildpacks:add/set/remove/clear/list (buildpacks:report is the property report)."""

from __future__ import annotations

import click

from paas.commands import CommandEnv, command
from paas.services import builders

INDEX = click.option("--index", type=int, default=None, help="Position in the list, from 1.")


def _show(env: CommandEnv, app: str, buildpacks: list[str]) -> None:
    env.echo(f"=====> {app} buildpack urls")
    for url in buildpacks:
        env.echo(url)


@command(
    "buildpacks:add", "Add a buildpack to an app's list (heroku/python, or a git URL); --index N inserts."
)
@INDEX
@click.argument("app")
@click.argument("buildpack")
def add(env: CommandEnv, index: int | None, app: str, buildpack: str) -> None:
    builders.add(env.ctx, app, buildpack, index)


@command("buildpacks:set", "Replace the buildpack at --index N (default 1) of an app's list.")
@INDEX
@click.argument("app")
@click.argument("buildpack")
def set_(env: CommandEnv, index: int | None, app: str, buildpack: str) -> None:
    builders.set_(env.ctx, app, buildpack, index)


@command("buildpacks:remove", "Remove a buildpack from an app's list (by name, or --index N).")
@INDEX
@click.argument("app")
@click.argument("buildpack", required=False)
def remove(env: CommandEnv, index: int | None, app: str, buildpack: str | None) -> None:
    builders.remove(env.ctx, app, buildpack, index)


@command("buildpacks:clear", "Empty an app's buildpack list (detection, or .buildpacks, decide again).")
@click.argument("app")
def clear(env: CommandEnv, app: str) -> None:
    builders.clear(env.ctx, app)


@command("buildpacks:list", "List an app's buildpacks, in the order they run.")
@click.argument("app")
def list_(env: CommandEnv, app: str) -> None:
    _show(env, app, builders.listed(env.ctx, app))
