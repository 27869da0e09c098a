"""A bridge network per app (and one per app's builds), with subnets from our own pool.

Docker's isolation rules drop traffic between different bridge networks, so app A cannot open a
connection to app B's containers. Docker's default address pools hold only about 30 networks;
ours come from PAAS_NETWORK_POOL (a /24 per app, a /28 per app's builds), picked under a lock
so concurrent deploys (separate processes) never pick the same one.
"""

from __future__ import annotations

import fcntl
import ipaddress
from pathlib import Path

import docker
from docker.types import IPAMConfig, IPAMPool

from paas.core import names
from paas.errors import PaasError


def _used_subnets(client: docker.DockerClient) -> list[ipaddress.IPv4Network]:
    used = []
    for n in client.api.networks():
        for cfg in (n.get("IPAM") or {}).get("Config") or []:
            try:
                net = ipaddress.ip_network(cfg.get("Subnet", ""), strict=False)
            except ValueError:
                continue
            if isinstance(net, ipaddress.IPv4Network):
                used.append(net)
    return used


def ensure(
    client: docker.DockerClient,
    name: str,
    instance: str,
    app: str,
    pool: str,
    lock: Path,
    prefix: int = 24,
    driver: str = "bridge",
) -> str:
    """The network `name`, created on first use with a free subnet of `pool` (/24: 254 addresses).
    `overlay` (a swarm app's) is attachable, so one-offs and backing services can join it too."""
    try:
        client.networks.get(name)
        return name
    except docker.errors.NotFound:
        pass
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            client.networks.get(name)
            return name
        except docker.errors.NotFound:
            pass
        used = _used_subnets(client)
        for subnet in ipaddress.ip_network(pool).subnets(new_prefix=prefix):
            if any(subnet.overlaps(u) for u in used):
                continue
            try:
                client.networks.create(
                    name,
                    driver=driver,
                    attachable=driver == "overlay",
                    ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]),
                    labels=names.app_labels(instance, app, names.ROLE_NETWORK),
                )
            except docker.errors.APIError as exc:
                if "overlap" in str(exc).lower():  # taken by someone else meanwhile
                    continue
                raise PaasError(f"cannot create the network {name}: {exc.explanation}") from None
            return name
    raise PaasError(f"no free /{prefix} left in PAAS_NETWORK_POOL ({pool}) for the network of {app}")


def remove_app_networks(client: docker.DockerClient, instance: str, app: str) -> None:
    """The app's networks (its containers must be gone already)."""
    for n in client.networks.list(filters={"label": names.label_filter(instance, app, names.ROLE_NETWORK)}):
        try:
            n.remove()
        except docker.errors.DockerException:
            pass
