"""The one place a Docker Engine client is made (through the SDK, never the CLI)."""

from __future__ import annotations

import docker

from paas.errors import PaasError


def client(timeout: int = 300) -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
    except Exception as exc:
        raise PaasError(
            f"cannot reach the Docker engine ({exc.__class__.__name__}); is dockerd running?"
        ) from None
    return c
