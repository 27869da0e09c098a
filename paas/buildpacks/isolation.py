"""What every build container gets, buildpack or Dockerfile: build code is as untrusted as app code."""

from __future__ import annotations

import docker

from paas.core import names, networks
from paas.core.container import log_config
from paas.settings import Settings


def build_hardening(client: docker.DockerClient, settings: Settings, app: str) -> dict:
    """What every build container gets: no capabilities, no-new-privileges, memory (no swap),
    pids and CPU ceilings, and a network of the app's builds, away from every app's processes."""
    network = networks.ensure(
        client,
        names.build_network(settings.instance_id, app),
        settings.instance_id,
        app,
        settings.network_pool,
        settings.engine_locks_dir / "networks.lock",
        prefix=28,  # a build runs one or two containers
    )
    kwargs: dict = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": settings.build_memory,
        "memswap_limit": settings.build_memory,
        "pids_limit": settings.build_pids,
        "network": network,
        "log_config": log_config(),  # the build log streams to the pusher; dockerd keeps a capped copy
    }
    if settings.build_cpus:
        kwargs["nano_cpus"] = int(settings.build_cpus * 1e9)
    return kwargs
