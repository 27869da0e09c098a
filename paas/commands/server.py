"""Host-only commands about the PaaS itself: `stack:build`, `router:stop` (`server` is defined in
paas/server.py: the server runs the SSH door, which dispatches these commands)."""

from __future__ import annotations

import click

from paas.buildpacks import stack
from paas.commands import CommandEnv, command
from paas.services import routing


@command("router:stop", "Stop the managed nginx a stopped server left serving.", host_only=True)
def router_stop(env: CommandEnv) -> None:
    if not routing.stop_router(env.ctx):
        env.echo("-----> the router is not running")
        return
    env.echo("-----> router stopped: apps are no longer reachable until paas server starts")


@command("stack:build", "Build the stack image from the Debian mirror unless it exists.", host_only=True)
@click.option("--force", is_flag=True, help="Rebuild even if the image exists.")
def stack_build(env: CommandEnv, force: bool) -> None:
    image = stack.build_stack(
        env.ctx.settings,
        env.ctx.docker,
        lambda ln: env.echo(f"-----> {ln}" if not ln.startswith(" ") else f"     {ln}"),
        force=force,
    )
    env.echo(f"=====> Stack image {image} is ready")
