"""access:* commands: who may do what with an app (the rules are in paas.services.access)."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import access

PERMISSIONS_HELP = f"Comma-separated, of {', '.join(access.PERMISSIONS)} (view is always included)."


@command("access", "List who has access to an app, and with which permissions.")
@click.argument("app")
@FORMAT_OPTION
def list_(env: CommandEnv, app: str, fmt: str) -> None:
    data = access.list_access(env.ctx, app)
    if fmt == "json":
        env.json(data)
        return
    env.echo(f"=====> {data['app']} access")
    env.echo(f"{data['owner'] or '-':<24} owner")
    for c in data["collaborators"]:
        env.echo(f"{c['user']:<24} {','.join(c['permissions'])}")


@command("access:add", "Give a user access to an app (default view,deploy,operate).")
@click.argument("app")
@click.argument("user")
@click.option("--permissions", default=None, help=PERMISSIONS_HELP)
def add(env: CommandEnv, app: str, user: str, permissions: str | None) -> None:
    grant = access.add_access(env.ctx, app, user, permissions)
    env.echo(f"-----> {grant.user} may now {','.join(grant.permissions)} {app}")


@command("access:update", "Change a collaborator's permissions on an app.")
@click.argument("app")
@click.argument("user")
@click.option("--permissions", required=True, help=PERMISSIONS_HELP)
def update(env: CommandEnv, app: str, user: str, permissions: str) -> None:
    grant = access.update_access(env.ctx, app, user, permissions)
    env.echo(f"-----> {grant.user} may now {','.join(grant.permissions)} {app}")


@command("access:remove", "Take a user's access to an app away (at once, open sessions too).")
@click.argument("app")
@click.argument("user")
def remove(env: CommandEnv, app: str, user: str) -> None:
    access.remove_access(env.ctx, app, user)
    env.echo(f"-----> {user} has no access to {app} any more")
