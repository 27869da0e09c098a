"""checks:disable, checks:enable, checks:skip, checks:run (checks:report is the property report)."""

from __future__ import annotations

import click

from paas.commands import CommandEnv, command
from paas.services import checks as checks_service


def _names(types: list[str]) -> str:
    return ",".join(types) or "none"


def _show(env: CommandEnv, app: str, lists: tuple[list[str], list[str]]) -> None:
    disabled, skipped = lists
    env.echo(f"-----> Checks disabled for {_names(disabled)}; skipped for {_names(skipped)} ({app})")


@command(
    "checks:disable",
    "No zero-downtime deploy and no checks for all process types, or the ones given (web,worker).",
)
@click.argument("app")
@click.argument("ptypes", nargs=-1)
def disable(env: CommandEnv, app: str, ptypes: tuple[str, ...]) -> None:
    _show(env, app, checks_service.set_checks(env.ctx, app, list(ptypes), "disabled"))


@command("checks:skip", "Deploy without running checks, for all process types or the ones given.")
@click.argument("app")
@click.argument("ptypes", nargs=-1)
def skip(env: CommandEnv, app: str, ptypes: tuple[str, ...]) -> None:
    _show(env, app, checks_service.set_checks(env.ctx, app, list(ptypes), "skipped"))


@command("checks:enable", "Run checks again (all process types, or the ones given).")
@click.argument("app")
@click.argument("ptypes", nargs=-1)
def enable(env: CommandEnv, app: str, ptypes: tuple[str, ...]) -> None:
    _show(env, app, checks_service.set_checks(env.ctx, app, list(ptypes), "enabled"))


@command("checks:run", "Run the checks now against running processes (all, web,worker, or worker.1).")
@click.argument("app")
@click.argument("targets", nargs=-1)
def run(env: CommandEnv, app: str, targets: tuple[str, ...]) -> None:
    count = checks_service.run_now(env.ctx, app, list(targets), env.progress())
    env.echo(f"-----> Checks passed for {count} process(es)")
