"""apps:* commands."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import apps as apps_service
from paas.services import lookup


@command("apps:create", "Create an app (a first git push creates it too).")
@click.argument("app")
def create(env: CommandEnv, app: str) -> None:
    created = apps_service.create_app(env.ctx, app)
    env.echo(f"-----> Created {created.name}")
    env.echo(f"       git remote add paas paas:{created.name}")


@command("apps:transfer", "Make another user the owner of an app (owner or admin).")
@click.argument("app")
@click.argument("user")
def transfer(env: CommandEnv, app: str, user: str) -> None:
    apps_service.transfer(env.ctx, app, user)
    env.echo(f"-----> Transferred {app} to {user}")


@command("apps:list", "List the apps you can view.")
@FORMAT_OPTION
def list_(env: CommandEnv, fmt: str) -> None:
    apps = lookup.list_apps(env.ctx)
    if fmt == "json":
        env.json([{"name": a.name, "created_at": a.created_at} for a in apps])
        return
    env.echo("=====> My Apps")
    for a in apps:
        env.echo(a.name)


@command("apps:exists", "Exit 0 when the app exists, 1 (with a line on stderr) when not (Dokku's).")
@click.argument("app")
def exists(env: CommandEnv, app: str) -> None:
    lookup.get_app(env.ctx, app)


@command("apps:report", "Dokku's apps report of one app, or of every app.")
@click.argument("app", required=False)
@FORMAT_OPTION
def report(env: CommandEnv, app: str | None, fmt: str) -> None:
    names = [app] if app else [a.name for a in lookup.list_apps(env.ctx)]
    data = {n: apps_service.app_info(env.ctx, n) for n in names}
    if fmt == "json":
        env.json(data if app is None else data[app])
        return
    for name, info in data.items():
        env.echo(f"=====> {name} app information")
        env.echo(f"       App created at:      {info['created_at']}")
        env.echo(f"       App deploy source:   {'git' if info['commit'] else ''}")
        env.echo(f"       App deploy source metadata: {info['commit'] or ''}")
        env.echo(f"       App dir:             {info['git_remote']}")
        env.echo("       App locked:          false")
        env.echo(f"       App url:             {info['url']}")


@command("apps:info", "Show an app: URL, release, processes, domains.")
@click.argument("app")
@FORMAT_OPTION
def info(env: CommandEnv, app: str, fmt: str) -> None:
    data = apps_service.app_info(env.ctx, app)
    if fmt == "json":
        env.json(data)
        return
    env.echo(f"=====> {data['name']}")
    rows = [
        ("URL", data["url"]),
        ("Git remote", data["git_remote"]),
        ("Domains", " ".join(data["domains"]) or "-"),
        ("Release", f"v{data['release']}" if data["release"] else "not deployed"),
        ("Deployed at", data["deployed_at"] or "-"),
        ("Commit", (data["commit"] or "-")[:7]),
        ("Buildpack", data["buildpack"] or "-"),
        ("Formation", " ".join(f"{t}={n}" for t, n in data["formation"].items()) or "-"),
        ("Processes", " ".join(f"{d}:{s}" for d, s in data["processes"].items()) or "-"),
        ("Stopped", "yes" if data["stopped"] else "no"),
        ("Created at", data["created_at"]),
    ]
    for label, value in rows:
        env.echo(f"{label + ':':<13}{value}")


@command("apps:rename", "Rename an app (its processes restart under the new name).")
@click.argument("old")
@click.argument("new")
def rename(env: CommandEnv, old: str, new: str) -> None:
    app = apps_service.rename_app(env.ctx, old, new)
    env.echo(f"-----> Renamed {old} to {app.name}: {lookup.app_url(env.ctx, app.name)}")
    env.echo(f"       git remote set-url paas paas:{app.name}")


@command(
    "apps:destroy", "Destroy an app: containers, images, repo, config (needs --confirm <app> or --force)."
)
@click.argument("app")
@click.option("--confirm", help="The app's name, to confirm.")
@click.option("--force", is_flag=True, help="Confirm without typing the name (Dokku's spelling).")
def destroy(env: CommandEnv, app: str, confirm: str | None, force: bool) -> None:
    apps_service.destroy_app(
        env.ctx, app, app if force or env.extras.get("force") else confirm, env.progress()
    )
    env.echo(f"-----> Destroyed {app}")
