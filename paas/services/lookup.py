"""Finding apps by name and naming their addresses: what every other service starts with.

Kept apart from `apps.py` (create, rename, destroy), which itself deploys: the services below
it look apps up here, so the dependencies point one way.
"""

from __future__ import annotations

from paas.core.context import Context
from paas.services import access
from paas.store import App


def get_app(ctx: Context, name: str) -> App:
    """An app the actor may view (NotFound otherwise, whether or not it exists); entry points that
    change something call `access.authorize` with their operation instead."""
    return access.require(ctx, name, "view")


def list_apps(ctx: Context) -> list[App]:
    """The apps the actor may view (admins: all)."""
    return access.visible_apps(ctx, ctx.store.list_apps())


def app_url(ctx: Context, name: str) -> str:
    return _url(ctx, f"{name}.{ctx.settings.domain}")


def app_urls(ctx: Context, name: str) -> list[str]:
    """The default URL first, then one per custom domain (`urls`), for those who may view it."""
    app = access.authorize(ctx, name, "urls")
    return [_url(ctx, host) for host in hostnames(ctx, app.name)]


def _url(ctx: Context, host: str) -> str:
    port = ctx.settings.http_port
    return f"http://{host}" + ("" if port == 80 else f":{port}")


def hostnames(ctx: Context, app: str) -> list[str]:
    """The default `<app>.<domain>` plus the app's custom domains."""
    record = ctx.store.get_app(app)
    custom = ctx.store.list_domains(record.id) if record else []
    return [f"{app}.{ctx.settings.domain}", *custom]
