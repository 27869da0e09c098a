"""Apps: create, look up, list."""

from __future__ import annotations

import sqlite3

from paas.errors import Conflict, NotFound
from paas.services import validation
from paas.services.context import Context
from paas.store import App


def create_app(ctx: Context, name: str) -> App:
    validation.app_name(name)
    if ctx.store.get_app(name):
        raise Conflict(f"app {name!r} already exists")
    try:
        app = ctx.store.create_app(name)
    except sqlite3.IntegrityError:
        raise Conflict(f"app {name!r} already exists") from None
    ctx.store.add_event(name, ctx.actor, "apps:create")
    return app


def get_app(ctx: Context, name: str) -> App:
    validation.app_name(name)
    app = ctx.store.get_app(name)
    if app is None:
        raise NotFound(f"app {name!r} does not exist")
    return app


def ensure_app(ctx: Context, name: str) -> App:
    """The app, created on the fly: a first `git push` creates it, as Dokku does."""
    validation.app_name(name)
    app = ctx.store.get_app(name)
    if app is not None:
        return app
    try:
        return create_app(ctx, name)
    except Conflict:  # created concurrently by another push
        return get_app(ctx, name)


def list_apps(ctx: Context) -> list[App]:
    return ctx.store.list_apps()


def app_url(ctx: Context, name: str) -> str:
    port = ctx.settings.http_port
    suffix = "" if port == 80 else f":{port}"
    return f"http://{name}.{ctx.settings.domain}{suffix}"
