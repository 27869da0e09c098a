"""Host-only commands that run the PaaS itself: `server`, `stack:build`."""

from __future__ import annotations

import click

from paas.buildpacks import stack
from paas.commands import CommandEnv, command
from paas.server import run_server
from paas.services import routing


@command("server", "Run the SSH receiver and the managed nginx (foreground).", host_only=True)
def server(env: CommandEnv) -> int:
    return run_server(env)


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
