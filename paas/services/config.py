"""Config vars: every change makes a new release and restarts the processes on it."""

from __future__ import annotations

from paas.core import validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import NotFound, PaasError
from paas.services import access
from paas.services.locks import app_lock
from paas.services.releases import new_release
from paas.store import App, Release

HIDDEN = "(hidden: needs the 'deploy' permission)"


def get_config(ctx: Context, app_name: str) -> dict[str, str]:
    """The config vars; someone who may only view the app sees the keys, not the values."""
    app = access.authorize(ctx, app_name, "config")
    config = ctx.store.get_config(app.id)
    if not access.can(ctx, app, access.OPERATIONS["config:values"]):
        return dict.fromkeys(config, HIDDEN)
    return config


class MissingVar(NotFound):
    """The app has no such config var (Dokku's `config:get` says so by its exit status alone)."""


def get_value(ctx: Context, app_name: str, key: str) -> str:
    app = access.authorize(ctx, app_name, "config:get")
    validation.config_key(key)
    config = ctx.store.get_config(app.id)
    if key not in config:
        raise MissingVar(f"{app_name} has no config var {key}")
    return config[key]


def set_config(
    ctx: Context, app_name: str, values: dict[str, str], log: BuildLog, restart: bool = True
) -> Release | None:
    """Set values (validated, byte for byte); returns the new release, or None without restart."""
    app = access.authorize(ctx, app_name, "config:set")
    if not values:
        raise PaasError("nothing to set: give KEY=value pairs")
    _check_values(values)
    with app_lock(ctx, app.name):
        config = {**ctx.store.get_config(app.id), **values}
        return _apply(ctx, app, config, "Set " + ", ".join(values), restart, log)


def unset_config(
    ctx: Context, app_name: str, keys: list[str], log: BuildLog, restart: bool = True
) -> Release | None:
    app = access.authorize(ctx, app_name, "config:unset")
    if not keys:
        raise PaasError("nothing to unset: give one or more KEYs")
    for key in keys:
        validation.config_key(key)
    with app_lock(ctx, app.name):
        config = ctx.store.get_config(app.id)
        _unset_in(app, config, keys)
        return _apply(ctx, app, config, "Unset " + ", ".join(keys), restart, log)


def update_config(
    ctx: Context,
    app_name: str,
    values: dict[str, str],
    unset: list[str],
    log: BuildLog,
    restart: bool = True,
) -> Release | None:
    """Set some keys and unset others in one release (the API's PATCH). Only sets, or only
    unsets, is exactly `config:set` or `config:unset`: same release, event and messages."""
    if not unset:
        return set_config(ctx, app_name, values, log, restart)
    if not values:
        return unset_config(ctx, app_name, unset, log, restart)
    app = access.authorize(ctx, app_name, "config:set")
    _check_values(values)
    for key in unset:
        validation.config_key(key)
    with app_lock(ctx, app.name):
        config = ctx.store.get_config(app.id)
        _unset_in(app, config, unset)
        config.update(values)
        description = f"Set {', '.join(values)}; unset {', '.join(unset)}"
        return _apply(ctx, app, config, description, restart, log)


def _check_values(values: dict[str, str]) -> None:
    for key, value in values.items():
        validation.config_key(key)
        validation.config_value(key, value)


def _unset_in(app: App, config: dict[str, str], keys: list[str]) -> None:
    """Remove `keys` from `config`; every one of them must be set."""
    missing = [k for k in keys if k not in config]
    if missing:
        raise NotFound(f"{app.name} has no config var {', '.join(missing)}")
    for key in keys:
        del config[key]


def _apply(
    ctx: Context, app: App, config: dict[str, str], description: str, restart: bool, log: BuildLog
) -> Release | None:
    """Deploy first, store after: a config that fails to boot never becomes the app's config."""
    validation.config_size(config)
    current = ctx.store.current_release(app.id)
    release = None
    if restart and current is not None and not app.stopped:
        release = new_release(
            ctx,
            app,
            build_id=current.build_id,
            config=config,
            formation=ctx.store.get_formation(app.id) or current.formation,
            description=description,
            log=log,
        )
    before = ctx.store.get_config(app.id)
    ctx.store.replace_config(app.id, config)
    ctx.store.add_event(app.name, ctx.actor, "config", description)
    changed = sorted(k for k in {*before, *config} if before.get(k) != config.get(k))
    ctx.plugins.call_post("paas_config_changed", ctx=ctx, app=app, keys=changed)
    return release
