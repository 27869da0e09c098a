"""Review apps (issue 32): `git push paas feature-x` makes a disposable copy of the app, built
from that branch, at its own URL; deleting the branch destroys it. The rules are in service.py,
the commands in commands.py, the app page's panel in web.py and templates/."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paas.plugin_api import access, declare_permissions, hookimpl

from . import service
from .commands import COMMANDS

if TYPE_CHECKING:
    import click
    from dulwich.repo import Repo
    from flask import Blueprint

    from paas.plugin_api import App, BuildLog, Context

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules.
access.declare_entries(
    __name__,
    {
        "service": {
            **dict.fromkeys(("review_name", "parse_stale_days"), access.PURE),
            **dict.fromkeys(
                ("settings_of", "review_config", "receive_branch", "before_destroy", "stale", "remove_stale"),
                access.INTERNAL,
            ),
            "enable": "review-apps:enable",
            "disable": "review-apps:disable",
            "report": "review-apps:list",
            "destroy": "review-apps:destroy",
        },
        "web": {"blueprint": access.PURE},
    },
)
access.declare_routes({"review_apps.destroy": "review-apps:destroy"})
declare_permissions(COMMANDS)


@hookimpl
def paas_commands() -> list[click.Command]:
    return list(COMMANDS)


@hookimpl
def paas_receive_branch(
    ctx: Context,
    app: App,
    branch: str,
    old_sha: str | None,
    new_sha: str | None,
    repo: Repo,
    log: BuildLog,
) -> str | None:
    return service.receive_branch(ctx, app, branch, old_sha, new_sha, repo, log)


@hookimpl(tryfirst=True)  # pr-predestroy while the app's services are still there
def paas_app_destroying(ctx: Context, app: App, log: BuildLog) -> None:
    service.before_destroy(ctx, app, log)


@hookimpl
def paas_reconcile(ctx: Context) -> None:
    service.remove_stale(ctx)


@hookimpl
def paas_web_blueprints() -> list[Blueprint]:
    """Only the dashboard needs Flask: imported here, not at every command's start."""
    from .web import blueprint

    return [blueprint()]
