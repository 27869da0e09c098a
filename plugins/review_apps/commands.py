"""review-apps:* commands: parse and render; the rules are in service.py."""

from __future__ import annotations

import click

from paas.plugin_api import FORMAT_OPTION, CommandEnv, define

from . import service


@define(
    "review-apps:enable",
    "Make a review app of each branch pushed to the app (not main/master).",
    permission="manage",
)
@click.argument("app")
@click.option(
    "--stale-days",
    default=None,
    metavar="N",
    help=f"Destroy a review app nobody pushed for N days (default {service.DEFAULT_STALE_DAYS}; 0: never).",
)
def enable(env: CommandEnv, app: str, stale_days: str | None) -> None:
    settings = service.enable(env.ctx, app, stale_days)
    env.echo(f"-----> Review apps enabled for {app}")
    env.echo("       git push paas <branch> creates or updates the review app of <branch>")
    env.echo("       git push paas :<branch> destroys it")
    stale = (
        f"after {settings.stale_days} day(s) without a push"
        if settings.stale_days
        else "never (--stale-days 0)"
    )
    env.echo(f"       stale review apps are destroyed {stale}")


@define(
    "review-apps:disable",
    "Make no new review apps of the app's branches (those there stay).",
    permission="manage",
)
@click.argument("app")
def disable(env: CommandEnv, app: str) -> None:
    changed = service.disable(env.ctx, app)
    env.echo(f"-----> Review apps {'disabled' if changed else 'were off'} for {app}")


@define(
    "review-apps:list", "List an app's review apps: name, branch, URL, release, last push.", permission="view"
)
@click.argument("app")
@FORMAT_OPTION
def list_(env: CommandEnv, app: str, fmt: str) -> None:
    found = service.report(env.ctx, app)
    if fmt == "json":
        env.json(found)
        return
    if found["parent"]:
        env.echo(f"=====> {app} is the review app of {found['parent']}, branch {found['branch']}")
        return
    state = "enabled" if found["enabled"] else "disabled"
    stale = f"stale after {found['stale_days']} day(s)" if found["stale_days"] else "never stale"
    env.echo(f"=====> {app} review apps ({state}, {stale})")
    for row in found["review_apps"]:
        release = f"v{row['release']}" if row["release"] else "-"
        env.echo(
            f"       {row['name']}  {row['branch']}  {row['url']}  {release}  last push {row['pushed_at']}"
        )
    if not found["review_apps"]:
        env.echo("       none")


@define(
    "review-apps:destroy",
    "Destroy a review app and its services (as deleting its branch does).",
    permission="deploy",
)
@click.argument("app")
def destroy(env: CommandEnv, app: str) -> None:
    service.destroy(env.ctx, app, env.progress())
    env.echo(f"-----> Destroyed review app {app}")


COMMANDS = [enable, disable, list_, destroy]
