"""config, config:get, config:set, config:unset."""

from __future__ import annotations

import base64
import binascii

import click

from paas.commands import FORMAT_OPTION, CommandEnv, alias, command
from paas.errors import PaasError
from paas.services import config as config_service


def _release_line(env: CommandEnv, release) -> None:  # type: ignore[no-untyped-def]
    if release is None:
        env.echo("       Not restarted: the change applies at the next deploy or restart")


@command("config", "Show an app's config vars (alias config:show).")
@click.argument("app")
@FORMAT_OPTION
def show(env: CommandEnv, app: str, fmt: str) -> None:
    config = config_service.get_config(env.ctx, app)
    if fmt == "json":
        env.json(config)
        return
    env.echo(f"=====> {app} env vars")
    width = max((len(k) for k in config), default=0) + 2
    for key, value in config.items():
        env.echo(f"{(key + ':').ljust(width)}{value}")


alias("config:show", "config")


@command("config:get", "Print one config value, exactly as stored.")
@click.argument("app")
@click.argument("key")
def get(env: CommandEnv, app: str, key: str) -> None:
    env.echo(config_service.get_value(env.ctx, app, key))


@command("config:set", "Set KEY=VALUE pairs; makes a new release and restarts the app.")
@click.argument("app")
@click.argument("pairs", nargs=-1, required=True)
@click.option("--no-restart", is_flag=True, help="Store only; apply at the next deploy.")
@click.option("--encoded", is_flag=True, help="Values are base64-encoded.")
def set_(env: CommandEnv, app: str, pairs: tuple[str, ...], no_restart: bool, encoded: bool) -> None:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise PaasError(f"invalid pair {pair!r}: use KEY=VALUE")
        if encoded:
            try:
                value = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise PaasError(f"the value of {key} is not valid base64 of UTF-8 text") from None
        values[key] = value
    env.echo(f"-----> Setting {', '.join(values)} on {app}")
    release = config_service.set_config(env.ctx, app, values, env.progress(), restart=not no_restart)
    _release_line(env, release)


@command("config:unset", "Unset KEYs; makes a new release and restarts the app.")
@click.argument("app")
@click.argument("keys", nargs=-1, required=True)
@click.option("--no-restart", is_flag=True, help="Store only; apply at the next deploy.")
def unset(env: CommandEnv, app: str, keys: tuple[str, ...], no_restart: bool) -> None:
    env.echo(f"-----> Unsetting {', '.join(keys)} on {app}")
    release = config_service.unset_config(env.ctx, app, list(keys), env.progress(), restart=not no_restart)
    _release_line(env, release)
