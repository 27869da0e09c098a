"""Maintenance mode (Dokku's `maintenance` plugin): `maintenance:on|off|report`. While on, the
router answers every request for the app with 503 and a page; deploys still go through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paas.plugin_api import access, declare_permissions, hookimpl

from . import service
from .commands import maintenance_off, maintenance_on, maintenance_report

if TYPE_CHECKING:
    import click

    from paas.plugin_api import App, BuildLog, Context, Release, RouteExtras

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules.
access.declare_entries(
    __name__,
    {
        "service": {
            **dict.fromkeys(("page_dir", "page_path", "plain_page", "blocked_by"), access.PURE),
            **dict.fromkeys(
                (
                    "is_on",
                    "app_page",
                    "refresh_page",
                    "nginx_extras",
                    "after_deploy",
                    "after_destroy",
                    "after_rename",
                ),
                access.INTERNAL,
            ),
            "report": "maintenance:report",
            "enable": "maintenance:on",
            "disable": "maintenance:off",
        },
    },
)
declare_permissions([maintenance_on, maintenance_off, maintenance_report])


@hookimpl
def paas_commands() -> list[click.Command]:
    return [maintenance_on, maintenance_off, maintenance_report]


@hookimpl
def paas_nginx_app(ctx: Context, app: App, extras: RouteExtras) -> None:
    service.nginx_extras(ctx, app, extras)


@hookimpl
def paas_post_deploy(ctx: Context, app: App, release: Release, log: BuildLog) -> None:
    service.after_deploy(ctx, app, release)
    if service.is_on(ctx, app):
        log.detail("maintenance mode is on: the router keeps answering 503 (maintenance:off to end it)")


@hookimpl
def paas_app_destroyed(ctx: Context, app: App) -> None:
    service.after_destroy(ctx, app)


@hookimpl
def paas_app_renamed(ctx: Context, app: App, old_name: str) -> None:
    service.after_rename(ctx, app, old_name)
