"""tokens:* commands: bearer tokens for the JSON API (only their hash is stored)."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import users as users_service


@command("tokens:create", "Create an API token for a user; it is printed once.", host_only=True)
@click.argument("user")
@click.option("--description", default="", help="What the token is for.")
def create(env: CommandEnv, user: str, description: str) -> None:
    token_id, token = users_service.create_token(env.ctx, user, description)
    env.err.write(f"-----> Token {token_id} for {user} (shown once; only its hash is kept):\n")
    env.err.flush()
    env.echo(token)


@command("tokens:list", "List API tokens: id, user, description, created, last used.", host_only=True)
@FORMAT_OPTION
def list_(env: CommandEnv, fmt: str) -> None:
    tokens = users_service.list_tokens(env.ctx)
    if fmt == "json":
        env.json(
            [
                {
                    "id": t.id,
                    "user": t.user,
                    "description": t.description,
                    "created_at": t.created_at,
                    "last_used_at": t.last_used_at,
                }
                for t in tokens
            ]
        )
        return
    for t in tokens:
        used = t.last_used_at or "never"
        env.echo(f"{t.id:<4} {t.user:<16} {t.created_at}  used {used:<20} {t.description}")


@command("tokens:revoke", "Revoke an API token by id.", host_only=True)
@click.argument("token_id")
def revoke(env: CommandEnv, token_id: str) -> None:
    users_service.revoke_token(env.ctx, token_id)
    env.echo(f"-----> Revoked token {token_id}")
