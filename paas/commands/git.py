"""git:from-archive, git:from-image (git:set and git:report are the property commands)."""

from __future__ import annotations

import sys

import click

from paas.commands import CommandEnv, command
from paas.core import archive
from paas.services import sources


@command(
    "git:from-archive",
    "Deploy a tar archive: from a URL, or on stdin with -- (ssh paas git:from-archive app -- < app.tar).",
)
@click.option(
    "--archive-type",
    "kind",
    type=click.Choice(sorted(archive.COMPRESSIONS)),
    default="tar",
    show_default=True,
)
@click.argument("app")
@click.argument("url", required=False)
def from_archive(env: CommandEnv, kind: str, app: str, url: str | None) -> None:
    # `--` (Dokku's "read stdin") is taken by the parser: no URL means stdin.
    stream = None if url else (env.stdin if env.stdin is not None else sys.stdin.buffer)
    env.echo(f"-----> Deploying {app} from an archive")
    sources.from_archive(env.ctx, app, stream, url, kind, env.progress())


@command("git:from-image", "Deploy an image (a local one, or one from a registry in PAAS_IMAGE_SOURCES).")
@click.argument("app")
@click.argument("image")
def from_image(env: CommandEnv, app: str, image: str) -> None:
    env.echo(f"-----> Deploying {app} from image {image}")
    sources.from_image(env.ctx, app, image, env.progress())
