"""checks:disable, checks:enable, checks:report."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import checks as checks_service


def _names(disabled: set[str]) -> str:
    return ", ".join(sorted("all" if d == checks_service.ALL else d for d in disabled)) or "none"


@command("checks:disable", "Skip health checks for an app (all process types, or the ones given).")
@click.argument("app")
@click.argument("ptypes", nargs=-1)
def disable(env: CommandEnv, app: str, ptypes: tuple[str, ...]) -> None:
    disabled = checks_service.set_checks(env.ctx, app, list(ptypes), enabled=False)
    env.echo(f"-----> Checks disabled for {app}: {_names(disabled)}")


@command("checks:enable", "Run health checks again (all process types, or the ones given).")
@click.argument("app")
@click.argument("ptypes", nargs=-1)
def enable(env: CommandEnv, app: str, ptypes: tuple[str, ...]) -> None:
    disabled = checks_service.set_checks(env.ctx, app, list(ptypes), enabled=True)
    env.echo(f"-----> Checks enabled for {app}; still disabled: {_names(disabled)}")


@command("checks:report", "Show which checks run before traffic moves to new processes.")
@click.argument("app")
@FORMAT_OPTION
def report(env: CommandEnv, app: str, fmt: str) -> None:
    data = checks_service.report(env.ctx, app)
    if fmt == "json":
        env.json(data)
        return
    env.echo(f"=====> {app} checks (disabled: {', '.join(data['disabled']) or 'none'})")
    for ptype, info in data["types"].items():
        state = "enabled" if info["enabled"] else "disabled"
        custom = "; app.json: " + ", ".join(info["custom"]) if info["custom"] else ""
        env.echo(f"{ptype}: {state} ({info['default']}{custom})")
