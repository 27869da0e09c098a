"""Finding apps by name and naming their addresses: what every other service starts with.

Kept apart from `apps.py` (create, rename, destroy), which itself deploys: the services below
it look apps up here, so the dependencies point one way.
"""

from __future__ import annotations

from paas.core import validation
from paas.core.context import Context
from paas.errors import NotFound
from paas.store import App


def get_app(ctx: Context, name: str) -> App:
    validation.app_name(name)
    app = ctx.store.get_app(name)
    if app is None:
        raise NotFound(f"app {name!r} does not exist")
    return app


def list_apps(ctx: Context) -> list[App]:
    return ctx.store.list_apps()


def app_url(ctx: Context, name: str) -> str:
    return _url(ctx, f"{name}.{ctx.settings.domain}")


def app_urls(ctx: Context, name: str) -> list[str]:
    """The default URL first, then one per custom domain (`urls`)."""
    return [_url(ctx, host) for host in hostnames(ctx, name)]


def _url(ctx: Context, host: str) -> str:
    port = ctx.settings.http_port
    return f"http://{host}" + ("" if port == 80 else f":{port}")


def hostnames(ctx: Context, app: str) -> list[str]:
    """The default `<app>.<domain>` plus the app's custom domains."""
    record = ctx.store.get_app(app)
    custom = ctx.store.list_domains(record.id) if record else []
    return [f"{app}.{ctx.settings.domain}", *custom]
