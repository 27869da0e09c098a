"""ssh-keys:* commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from paas.commands import CommandEnv, command
from paas.errors import PaasError
from paas.services import keys as keys_service


@command(
    "ssh-keys:add",
    "Attach a public key (file path or '-' for stdin) to a user, created if needed; the first is admin.",
    host_only=True,
)
@click.argument("user")
@click.argument("path")
def add(env: CommandEnv, user: str, path: str) -> None:
    if path == "-":
        stream = env.stdin if env.stdin is not None else sys.stdin.buffer
        text = stream.read().decode("utf-8", errors="replace")
    else:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise PaasError(f"cannot read {path}: {exc.strerror}") from None
    key = keys_service.add_key(env.ctx, user, text)
    role = " (admin)" if key.is_admin else ""
    env.echo(f"-----> Added key {key.name}{role}: {key.fingerprint} (user {user})")


@command("ssh-keys:list", "List the allowed keys with their fingerprints.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_(env: CommandEnv, fmt: str) -> None:
    keys = keys_service.list_keys(env.ctx)
    if fmt == "json":
        env.echo(
            json.dumps(
                [
                    {
                        "name": k.name,
                        "user": k.user,
                        "fingerprint": k.fingerprint,
                        "admin": k.is_admin,
                        "created_at": k.created_at,
                    }
                    for k in keys
                ]
            )
        )
        return
    for k in keys:
        user = k.user or "-"
        env.echo(f"{k.name}  {user}  {k.fingerprint}{'  admin' if k.is_admin else ''}")


@command("ssh-keys:remove", "Remove a key by name; its open SSH sessions end.", host_only=True)
@click.argument("name")
def remove(env: CommandEnv, name: str) -> None:
    keys_service.remove_key(env.ctx, name)
    env.echo(f"-----> Removed key {name}")
