"""storage:* commands (Dokku's names): parse and render; the rules are in service.py."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, define
from paas.core.names import APP_UID

from . import service

NEXT = "takes effect on the next deploy or ps:restart"


@define(
    "storage:ensure-directory",
    "Create a storage directory of your own (with --app APP: the app's) to mount into apps.",
    permission="manage",
    app_optional=True,
)
@click.argument("name")
@click.option("--app", "app", default=None, help="Make it the app's: whoever may manage the app mounts it.")
def ensure_directory(env: CommandEnv, name: str, app: str | None) -> None:
    path, created = service.ensure_directory(env.ctx, name, app)
    done = "Created" if created else "Already there:"
    env.echo(f"-----> {done} {path} (owner uid {APP_UID}, the app user)")
    env.echo(f"       mount it with: storage:mount <app> {path}:/app/storage")


@define(
    "storage:mount",
    "Mount a storage directory into an app: <app> <host-dir>:<container-path>[:ro].",
    permission="manage",
    owned=True,
)
@click.argument("app")
@click.argument("mount", metavar="HOST-DIR:CONTAINER-PATH")
def mount(env: CommandEnv, app: str, mount: str) -> None:
    m = service.mount(env.ctx, app, mount)
    env.echo(f"-----> Mounted {m.host} at {m.container}{' (read-only)' if m.read_only else ''} in {app}")
    env.echo(f"       {NEXT}")


@define(
    "storage:unmount", "Remove a mount from an app: <app> <host-dir>:<container-path>.", permission="manage"
)
@click.argument("app")
@click.argument("mount", metavar="HOST-DIR:CONTAINER-PATH")
def unmount(env: CommandEnv, app: str, mount: str) -> None:
    m = service.unmount(env.ctx, app, mount)
    env.echo(f"-----> Unmounted {m.host} from {m.container} in {app} (the directory and its files stay)")
    env.echo(f"       {NEXT}")


@define("storage:list", "List an app's storage mounts.", permission="manage")
@click.argument("app")
@FORMAT_OPTION
def list_(env: CommandEnv, app: str, fmt: str) -> None:
    mounts = service.mounts_of(env.ctx, app)
    if fmt == "json":
        env.json([m.as_dict() for m in mounts])
        return
    env.echo(f"=====> {app} volume bind-mounts:")
    for m in mounts:
        env.echo(f"       {m.spec}")


COMMANDS = [ensure_directory, mount, unmount, list_]
