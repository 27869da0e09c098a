"""nodes:*: the swarm's hosts. Parse and render only (the rules are in nodes.py); admins only:
the plugin declares `admin` for each, and the service checks again at its entry."""

from __future__ import annotations

import click

from paas.core.validation import printable
from paas.plugin_api import FORMAT_OPTION, CommandEnv, define

from . import nodes as nodes_service


@define(
    "nodes:list",
    "List the swarm's nodes: name, address, role, state, availability, processes.",
    permission="admin",
)
@FORMAT_OPTION
def list_(env: CommandEnv, fmt: str) -> None:
    found = nodes_service.list_nodes(env.ctx)
    if fmt == "json":
        env.json(
            [
                {
                    "id": n.id,
                    "name": n.name,
                    "address": n.address,
                    "role": n.role,
                    "state": n.state,
                    "availability": n.availability,
                    "processes": n.tasks,
                    "self": n.is_self,
                }
                for n in found
            ]
        )
        return
    env.echo(f"{'NAME':<24} {'ADDRESS':<16} {'ROLE':<8} {'STATE':<8} {'AVAILABILITY':<12} PROCESSES")
    for n in found:
        name = printable(n.name) + (" *" if n.is_self else "")  # a hostname came from the node
        env.echo(f"{name:<24} {n.address:<16} {n.role:<8} {n.state:<8} {n.availability:<12} {n.tasks}")


@define(
    "nodes:join-command",
    "Print the shell lines that make the new Debian host <hostname> (root, docker.io running) a node.",
    permission="admin",
)
@click.argument("hostname", required=False)
@click.option("--rotate", is_flag=True, help="A new join token first: lines printed before stop working.")
def join_command(env: CommandEnv, hostname: str | None, rotate: bool) -> None:
    lines = nodes_service.join_command(env.ctx, hostname, rotate=rotate)
    for line in lines:
        env.echo(line)
    if not lines:
        env.echo("-----> The join token was rotated: lines printed before no longer join")


@define(
    "nodes:drain",
    "Move every process off a node and place none there (until nodes:activate).",
    permission="admin",
)
@click.argument("node")
def drain(env: CommandEnv, node: str) -> None:
    n = nodes_service.drain(env.ctx, node)
    env.echo(f"-----> {printable(n.name)} is draining: its processes move to the other nodes")


@define(
    "nodes:activate",
    "Let a drained node take processes again.",
    permission="admin",
)
@click.argument("node")
def activate(env: CommandEnv, node: str) -> None:
    n = nodes_service.activate(env.ctx, node)
    env.echo(f"-----> {printable(n.name)} is active")


@define(
    "nodes:remove",
    "Forget a node that is down or has left (--force: one still up).",
    permission="admin",
)
@click.argument("node")
@click.option("--force", is_flag=True, help="Remove it even if it is still up.")
def remove(env: CommandEnv, node: str, force: bool) -> None:
    done = nodes_service.remove(env.ctx, node, force=force)
    env.echo(f"-----> {printable(done.node.name)} removed from the swarm")
    env.echo("       The join token was rotated: lines printed before no longer join (nodes:join-command)")
    env.echo("       Its registry certificates were revoked: that host can no longer pull")
    if done.shared_revoked:
        env.echo("       It had joined with the certificate nodes shared before: that one was revoked too")
        for name in done.still_shared:
            env.echo(
                f"       {printable(name)} may hold only that one: run `nodes:join-command {printable(name)}`"
                " and its lines there, or it cannot pull"
            )


COMMANDS = [list_, join_command, drain, activate, remove]
