"""The swarm plugin's settings, kept with the plugin and read through `Settings.extra` like any
plugin's, checked by the core's rules for ports, addresses and networks. A bad value refuses what
needs it (a `nodes:*` command, a deploy onto the swarm) with one line; docker-local never reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paas.plugin_api import PaasError, Settings
from paas.settings import address, cidrs, port, port_range

CONSTRAINT_RE = re.compile(r"[A-Za-z0-9_.\-]+ *(==|!=) *[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class SwarmSettings:
    # PAAS_SWARM_CONSTRAINTS: placement constraints of every app service (Swarm's syntax)
    constraints: tuple[str, ...] = ()
    # PAAS_SWARM_ADVERTISE_ADDR: the address nodes reach this manager by (default: docker0's)
    advertise_addr: str | None = None
    # PAAS_REGISTRY_PORT: the private registry's port on it
    registry_port: int = 5001
    # PAAS_SWARM_APP_PORTS: the published app ports a worker opens to the manager only (docker's
    # dynamic range: host-mode ports without a number get one from it)
    app_ports: tuple[int, int] = (32768, 60999)
    # PAAS_SWARM_JOIN_ALLOW: hosts about to join (addresses or CIDRs): the manager's swarm ports
    # (2377, 7946, 4789) answer the swarm's nodes and these only
    join_allow: tuple[str, ...] = ()


def swarm_settings(settings: Settings) -> SwarmSettings:
    env = settings.extra
    try:
        return SwarmSettings(
            constraints=_constraints("PAAS_SWARM_CONSTRAINTS", env.get("PAAS_SWARM_CONSTRAINTS", "")),
            advertise_addr=address("PAAS_SWARM_ADVERTISE_ADDR", env),
            registry_port=port("PAAS_REGISTRY_PORT", 5001, env),
            app_ports=port_range("PAAS_SWARM_APP_PORTS", (32768, 60999), env),
            join_allow=cidrs("PAAS_SWARM_JOIN_ALLOW", env),
        )
    except SystemExit as exc:  # the core's checks exit at start: here it refuses the command
        raise PaasError(str(exc).removeprefix("error: ")) from None


def _constraints(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated Swarm placement constraints (`node.role==manager`, `node.labels.apps==yes`)."""
    out = []
    for part in raw.split(","):
        if part.strip():
            if not CONSTRAINT_RE.fullmatch(part.strip()):
                raise PaasError(f"{name}: {part.strip()!r} is not a constraint like node.labels.x==y")
            out.append(part.strip())
    return tuple(out)
