"""logs, builds:output."""

from __future__ import annotations

import click

from paas.commands import CommandEnv, command
from paas.core.validation import terminal_safe
from paas.services import logs as logs_service


@command("logs", "Show an app's logs; -t follows them, -p filters by process type.")
@click.argument("app")
@click.option("-n", "--num", "lines", type=int, default=100, help="How many lines to show first.")
@click.option("-t", "--tail", "follow", is_flag=True, help="Keep following until you disconnect.")
@click.option("-p", "--ps", "ptype", help="Only this process type.")
def logs(env: CommandEnv, app: str, lines: int, follow: bool, ptype: str | None) -> None:
    if not follow:
        for line in logs_service.recent(env.ctx, app, lines, ptype):
            env.echo(terminal_safe(line))
        return
    # App output is the app's, not ours: no ESC sequences reach the reader's terminal.
    logs_service.follow(
        env.ctx, app, lambda line: env.echo(terminal_safe(line)), env.disconnected, lines, ptype
    )


@command("builds:output", "Show the build output of a release (default: the latest build).")
@click.argument("app")
@click.argument("version", required=False)
def build_output(env: CommandEnv, app: str, version: str | None) -> None:
    output = logs_service.build_output(env.ctx, app, version)
    env.out.write("".join(terminal_safe(line) + "\n" for line in output.splitlines()))
    env.out.flush()
