"""notifications: webhooks per app and platform-wide for deploys (started, succeeded, failed),
rollbacks (by a person or the post-deploy watch), crash loops, OOM kills, certificates about to
end, failed backups and nodes that went down. Signed with Standard Webhooks, retried with
backoff, every attempt in a delivery log; a Slack-compatible body on request.
`notifications:add|list|remove|test|log`; the rules are in service.py, the request in send.py.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from paas.plugin_api import access, declare_permissions, hookimpl

from . import service as rules  # (`service` is an argument of paas_backup_failed)
from .commands import COMMANDS

if TYPE_CHECKING:
    import click

    from paas.plugin_api import App, Context, Release

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules.
access.declare_entries(
    __name__,
    {
        "send": {
            **dict.fromkeys(("parse_url", "resolve", "check", "headers"), access.PURE),
            "post": access.INTERNAL,
        },
        "service": {
            **dict.fromkeys(("parse_events", "new_secret"), access.PURE),
            **dict.fromkeys(("store", "notify", "attempt", "send_due"), access.INTERNAL),
            "add": "notifications:add",
            "list_hooks": "notifications:list",
            "remove": "notifications:remove",
            "log": "notifications:log",
            "test": "notifications:test",
        },
    },
)
declare_permissions(COMMANDS)
log = logging.getLogger("paas.notifications")
SEND_SECONDS = 1.0


@hookimpl
def paas_commands() -> list[click.Command]:
    return list(COMMANDS)


@hookimpl
def paas_deploy_started(ctx: Context, app: App, release: Release) -> None:
    rules.notify(
        ctx,
        app.name,
        "deploy.started",
        f"{app.name} v{release.version}: deploying ({release.description})",
        {"release": release.version, "description": release.description, "by": ctx.actor},
    )


@hookimpl
def paas_post_deploy(ctx: Context, app: App, release: Release) -> None:
    rules.notify(
        ctx,
        app.name,
        "deploy.succeeded",
        f"{app.name} v{release.version} deployed ({release.description})",
        {"release": release.version, "description": release.description, "by": ctx.actor},
    )


@hookimpl
def paas_deploy_failed(ctx: Context, app: App, release: Release | None, error: str) -> None:
    what = f"v{release.version}" if release else "the build"
    rules.notify(
        ctx,
        app.name,
        "deploy.failed",
        f"{app.name}: {what} failed, the running release keeps serving: {error}",
        {"release": release.version if release else None, "error": error, "by": ctx.actor},
    )


@hookimpl
def paas_rolled_back(ctx: Context, app: App, release: Release, target: Release, reason: str | None) -> None:
    summary = (
        f"{app.name}: {reason}; v{target.version} serves again as v{release.version}"
        if reason
        else f"{app.name} rolled back to v{target.version} as v{release.version} by {ctx.actor or 'root'}"
    )
    rules.notify(
        ctx,
        app.name,
        "release.rolled_back",
        summary,
        {
            "release": release.version,
            "to": target.version,
            "reason": reason,
            "by": ctx.actor,
            "automatic": bool(reason),
        },
    )


@hookimpl
def paas_process_trouble(ctx: Context, app: App, dyno: str, kind: str, detail: str) -> None:
    event = "process.oom_killed" if kind == "oom-killed" else "process.crash_loop"
    rules.notify(ctx, app.name, event, f"{app.name}: {detail}", {"dyno": dyno})


@hookimpl
def paas_certificate_expiring(
    ctx: Context, app: App | None, hostnames: list[str], not_after: str, days: int
) -> None:
    whose = app.name if app else "the dashboard"
    rules.notify(
        ctx,
        app.name if app else None,
        "certificate.expiring",
        f"the certificate of {whose} ({', '.join(hostnames)}) ends in {days} day(s), {not_after}",
        {"hostnames": hostnames, "not_after": not_after, "days": days},
    )


@hookimpl
def paas_backup_failed(ctx: Context, service: str, error: str) -> None:
    rules.notify(
        ctx,
        None,
        "backup.failed",
        f"scheduled backup of {service} failed: {error}",
        {"service": service, "error": error},
    )


@hookimpl
def paas_node_down(ctx: Context, node: str, detail: str) -> None:
    rules.notify(ctx, None, "node.down", f"swarm node {detail}", {"node": node})


@hookimpl
def paas_server_started(ctx: Context, stop: threading.Event) -> None:
    threading.Thread(target=_sender, args=(ctx, stop), daemon=True, name="notifications").start()


def _sender(ctx: Context, stop: threading.Event) -> None:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook") as pool:
        while not stop.wait(SEND_SECONDS):
            try:
                rules.send_due(ctx, pool)
            except Exception:  # the store busy for a moment: the next pass sends
                log.exception("notifications: sending failed")


@hookimpl
def paas_app_destroyed(ctx: Context, app: App) -> None:
    rules.store(ctx).forget_app(app.name)


@hookimpl
def paas_app_renamed(ctx: Context, app: App, old_name: str) -> None:
    rules.store(ctx).rename_app(old_name, app.name)
