"""config, config:get, config:set, config:unset."""

from __future__ import annotations

import base64
import binascii
import shlex

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


@command(
    "config:get",
    "Print one config value (control characters escaped; `config --format json` keeps them); unset: exit 1.",
)
@click.argument("app")
@click.argument("key")
def get(env: CommandEnv, app: str, key: str) -> int:
    try:
        env.echo(config_service.get_value(env.ctx, app, key))
    except config_service.MissingVar:
        return 1  # as Dokku: no output, exit status 1 (scripts test `config:get app K || ...`)
    return 0


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


EXPORT_FORMATS = ("exports", "envfile", "json", "shell")


@command("config:export", "Print the config for a shell or a file: --format exports|envfile|json|shell.")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="exports", help="Output format.")
def export(env: CommandEnv, app: str, fmt: str) -> None:
    config = config_service.get_config(env.ctx, app)
    if fmt == "json":
        env.json(config)
    elif fmt == "shell":  # one line, for `env $(ssh paas config:export app --format shell) cmd`
        env.echo(" ".join(f"{k}={_shell_quote(v)}" for k, v in config.items()))
    else:
        prefix = "export " if fmt == "exports" else ""
        for key, value in config.items():
            env.echo(f"{prefix}{key}={_shell_quote(value)}")


def _shell_quote(value: str) -> str:
    """shlex.quote, or bash's $'...' for a value with control characters: the same value for
    the shell, and nothing raw for the terminal the export is printed on."""
    if all(c.isprintable() or c in "\n\t" for c in value):
        return shlex.quote(value)
    named = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}

    def one(c: str) -> str:
        if c in named:
            return named[c]
        if c.isprintable():
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x80 else f"\\U{ord(c):08x}"

    return "$'" + "".join(one(c) for c in value) + "'"


@command("config:keys", "List the names of an app's config vars, one a line.")
@click.argument("app")
def keys(env: CommandEnv, app: str) -> None:
    for key in config_service.get_config(env.ctx, app):
        env.echo(key)


@command("config:clear", "Unset every config var; makes a new release and restarts the app.")
@click.argument("app")
@click.option("--no-restart", is_flag=True, help="Store only; apply at the next deploy.")
def clear(env: CommandEnv, app: str, no_restart: bool) -> None:
    names = list(config_service.get_config(env.ctx, app))
    if not names:
        env.echo(f"-----> {app} has no config vars")
        return
    env.echo(f"-----> Unsetting every config var of {app}")
    release = config_service.unset_config(env.ctx, app, names, env.progress(), restart=not no_restart)
    _release_line(env, release)
