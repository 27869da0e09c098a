"""swarm: Docker Swarm when one host is not enough. The `swarm` scheduler (`scheduler:set <app>
swarm`), the `nodes:*` commands, and the private registry the nodes pull app images from.

Written as a third-party plugin could be: the core knows one scheduler (docker-local) and reaches
this one through `paas_schedulers` and the `Scheduler` interface (paas/scheduler/interface.py);
what a pass does for the cluster (a node that fell, the firewall toward the nodes, the node GC)
runs in `paas_reconcile`. The rules are in nodes.py, the commands in commands.py; the scheduler,
the cluster's engine and firewall, and the registry are in scheduler/.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from paas.core.names import SCHEDULER_SWARM
from paas.plugin_api import App, Context, access, declare_permissions, hookimpl

from . import nodes
from .commands import COMMANDS

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules (admins).
access.declare_entries(
    __name__,
    {
        "nodes": {
            **dict.fromkeys(
                (
                    "advertise_address",
                    "ensure_swarm",
                    "publish",
                    "collect_nodes",
                    "guard_node_ports",
                    "guard_workers",
                    "watch_nodes",
                    "scheduler",
                    "reconcile",
                ),
                access.INTERNAL,
            ),
            "list_nodes": "nodes:list",
            "join_command": "nodes:join-command",
            "drain": "nodes:drain",
            "activate": "nodes:activate",
            "remove": "nodes:remove",
        },
        "settings": {"swarm_settings": access.PURE},
    },
)
declare_permissions(COMMANDS)


@hookimpl
def paas_commands() -> list[click.Command]:
    return list(COMMANDS)


@hookimpl
def paas_schedulers() -> dict[str, Callable]:
    return {SCHEDULER_SWARM: nodes.scheduler}


@hookimpl
def paas_reconcile(ctx: Context, apps: list[App]) -> None:
    nodes.reconcile(ctx, apps)
