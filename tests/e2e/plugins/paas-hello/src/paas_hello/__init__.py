"""A complete third-party plugin: one command, one post-deploy hook, one pre-build that refuses."""

from __future__ import annotations

import click

from paas.plugin_api import CommandEnv, PaasError, define, hookimpl


@define("hello:deploys", "List the deploys this plugin saw.", permission="view")
@click.argument("app")
def deploys(env: CommandEnv, app: str) -> None:
    log = env.ctx.settings.plugins_dir / "hello" / f"{app}.log"
    env.echo(log.read_text() if log.exists() else "none")


@hookimpl
def paas_commands():
    return [deploys]


@hookimpl
def paas_pre_build(app, source):
    if source.read("REFUSE") is not None:
        raise PaasError("this commit has a REFUSE file")


@hookimpl
def paas_post_deploy(ctx, app, release):
    folder = ctx.settings.plugins_dir / "hello"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{app.name}.log", "a") as fh:
        fh.write(f"{app.name} v{release.version}\n")
