"""users:* commands: accounts for the dashboard and the JSON API."""

from __future__ import annotations

import getpass
import sys

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.errors import PaasError
from paas.services import users as users_service


def read_password(env: CommandEnv) -> str:
    """Prompted twice on a terminal; otherwise the first line of stdin (for scripts)."""
    stream = env.stdin if env.stdin is not None else sys.stdin.buffer
    if stream.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise PaasError("the passwords differ")
        return first
    line = stream.readline().decode("utf-8", errors="replace")
    return line.removesuffix("\n").removesuffix("\r")


@command("users:add", "Add a dashboard/API user (password prompted, or read from stdin).", host_only=True)
@click.argument("name")
@click.option("--admin", is_flag=True, help="May manage users and tokens through the API.")
def add(env: CommandEnv, name: str, admin: bool) -> None:
    user = users_service.add_user(env.ctx, name, read_password(env), admin=admin)
    env.echo(f"-----> Added user {user.name}" + (" (admin)" if user.is_admin else ""))


@command("users:passwd", "Set a user's password (prompted, or stdin); ends their sessions.", host_only=True)
@click.argument("name")
def passwd(env: CommandEnv, name: str) -> None:
    users_service.set_password(env.ctx, name, read_password(env))
    env.echo(f"-----> Changed the password of {name}")


@command("users:list", "List the dashboard/API users (admins only).")
@FORMAT_OPTION
def list_(env: CommandEnv, fmt: str) -> None:
    users = users_service.list_users(env.ctx)
    if fmt == "json":
        env.json([{"name": u.name, "admin": u.is_admin, "created_at": u.created_at} for u in users])
        return
    for u in users:
        env.echo(f"{u.name}  {u.created_at}{'  admin' if u.is_admin else ''}")


@command("users:remove", "Remove a user with their sessions and API tokens.", host_only=True)
@click.argument("name")
def remove(env: CommandEnv, name: str) -> None:
    users_service.remove_user(env.ctx, name)
    env.echo(f"-----> Removed user {name}")
