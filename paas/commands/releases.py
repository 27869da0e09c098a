"""releases, releases:info, releases:rollback."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import releases as releases_service


@command("releases", "List an app's releases: version, what, who, when, status.")
@click.argument("app")
@FORMAT_OPTION
def list_(env: CommandEnv, app: str, fmt: str) -> None:
    views = releases_service.list_releases(env.ctx, app)
    if fmt == "json":
        env.json([v.as_json() for v in views])
        return
    env.echo(f"=====> {app} releases")
    width = min(max((len(v.release.description) for v in views), default=10), 72)
    for v in views:
        r = v.release
        what = r.description if len(r.description) <= width else r.description[: width - 1] + "…"
        env.echo(f"v{r.version:<4} {what:<{width}}  {r.user or '-':<12} {r.created_at}  {v.state}")


@command("releases:info", "Show one release (vN).")
@click.argument("app")
@click.argument("version")
@FORMAT_OPTION
def info(env: CommandEnv, app: str, version: str, fmt: str) -> None:
    view = releases_service.release_info(env.ctx, app, version)
    data = view.as_json()
    if fmt == "json":
        env.json(data)
        return
    env.echo(f"=====> {app} v{data['version']}")
    for label, key in (
        ("Description", "description"),
        ("By", "user"),
        ("When", "created_at"),
        ("Status", "status"),
        ("Commit", "commit"),
    ):
        env.echo(f"{label + ':':<13}{data[key] or '-'}")
    env.echo(f"{'Formation:':<13}" + (" ".join(f"{t}={n}" for t, n in data["formation"].items()) or "-"))
    env.echo(f"{'Config vars:':<13}" + (" ".join(data["config_keys"]) or "-"))


@command("releases:rollback", "Roll back to vN (default: the previous good release).")
@click.argument("app")
@click.argument("version", required=False)
def rollback(env: CommandEnv, app: str, version: str | None) -> None:
    env.echo(f"-----> Rolling back {app}" + (f" to {version}" if version else ""))
    release = releases_service.rollback(env.ctx, app, version, env.progress())
    env.echo(f"=====> {app} is now at v{release.version} ({release.description})")
