"""HTTPS for apps and the dashboard (Dokku's `certs` and `letsencrypt` in one plugin, since both
manage the same certificate files): certificates by hand (`certs:*`) or from ACME
(`letsencrypt:*`), served by the router over TLS with SNI; renewal from the reconcile loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paas.plugin_api import access, declare_permissions, hookimpl

from . import expiry, letsencrypt, service
from .commands import COMMANDS

if TYPE_CHECKING:
    import click

    from paas.plugin_api import App, BuildLog, Context, RestoreSource, RouteExtras

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules.
access.declare_entries(
    __name__,
    {
        "letsencrypt": {
            "is_public": access.PURE,
            **dict.fromkeys(
                ("names_for", "obtain", "issue", "due", "enabled", "reconcile", "follow_parent"),
                access.INTERNAL,
            ),
            "enable": "letsencrypt:enable",
            "disable": "letsencrypt:disable",
            "auto_renew": "letsencrypt:auto-renew",
        },
        "expiry": {"check": access.INTERNAL},
        "settings": {"acme": access.PURE},
        "pem": dict.fromkeys(
            ("now", "describe", "check_pair", "read_info", "from_tar", "self_signed"), access.PURE
        ),
        "service": {
            **dict.fromkeys(
                (
                    "certs_root",
                    "app_subject",
                    "subject",
                    "dashboard_subject",
                    "all_subjects",
                    "get",
                    "put",
                    "has_cert",
                    "current_info",
                    "route_tls",
                    "parent_tls",
                    "acme_root",
                    "nginx_extras",
                    "sync",
                    "install",
                    "remove_files",
                    "after_destroy",
                    "restore_from_backup",
                ),
                access.INTERNAL,
            ),
            "add": "certs:add",
            "generate": "certs:generate",
            "remove": "certs:remove",
            "set_flag": "certs:redirect",
            "report": "certs:report",
            "reports": "letsencrypt:list",
        },
    },
)
declare_permissions(COMMANDS)


@hookimpl
def paas_commands() -> list[click.Command]:
    return list(COMMANDS)


@hookimpl
def paas_nginx_app(ctx: Context, app: App, extras: RouteExtras) -> None:
    service.nginx_extras(ctx, service.app_subject(ctx, app), extras)


@hookimpl
def paas_nginx_dashboard(ctx: Context, extras: RouteExtras) -> None:
    service.nginx_extras(ctx, service.dashboard_subject(ctx), extras)


@hookimpl
def paas_reconcile(ctx: Context) -> None:
    letsencrypt.reconcile(ctx)
    expiry.check(ctx)


@hookimpl
def paas_app_destroyed(ctx: Context, app: App) -> None:
    service.after_destroy(ctx, app)


@hookimpl
def paas_backup_restore(ctx: Context, source: RestoreSource, log: BuildLog) -> str:
    """Certificates and the ACME account come back with the files of a platform restore; an app
    restored alone gets its certificate folder under its new id."""
    return service.restore_from_backup(ctx, source, log)


@hookimpl
def paas_post_deploy(ctx: Context, app: App, log: BuildLog) -> None:
    """A review app's HTTPS, as its parent has it (once, after its first deploy)."""
    letsencrypt.follow_parent(ctx, app, log)
