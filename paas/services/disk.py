"""Free disk space: where the PaaS and dockerd keep their data, and the floor a push needs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import docker

from paas.core.context import Context
from paas.errors import PaasError


@dataclass(frozen=True)
class Space:
    what: str
    path: str
    free: int
    total: int


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


# dockerd's address -> its data folder, learnt ahead of a push (see learn_docker_root)
_known_roots: dict[str, Path] = {}


def learn_docker_root(client: docker.DockerClient) -> None:
    """Ask dockerd where it keeps its data before anyone waits: `docker info` gathers much more
    and takes 0.1-0.5 s, and a push's pack process (spawned warm, ahead of its push) needs only
    this folder, which no request changes."""
    _known_roots[client.api.base_url] = Path(client.info().get("DockerRootDir") or "/var/lib/docker")


def docker_root(ctx: Context) -> Path | None:
    try:
        known = _known_roots.get(ctx.docker.api.base_url)
        return known or Path(ctx.docker.info().get("DockerRootDir") or "/var/lib/docker")
    except (docker.errors.DockerException, PaasError):
        return None


def spaces(ctx: Context) -> list[Space]:
    """The data dir's file system and docker's (often the same one)."""
    out = []
    for what, path in (("data dir", ctx.settings.data_dir), ("docker", docker_root(ctx))):
        if path is None or not path.exists():
            continue
        usage = shutil.disk_usage(path)
        out.append(Space(what, str(path), usage.free, usage.total))
    return out


def require_free(ctx: Context) -> None:
    """Refuse to start a build when either place is short of PAAS_MIN_FREE_DISK: a build that
    fills the disk takes every app and the store down with it."""
    floor = ctx.settings.min_free_disk
    for s in spaces(ctx):
        if s.free < floor:
            raise PaasError(
                f"not enough free disk for a build: {human(s.free)} free on {s.path} ({s.what}), "
                f"PAAS_MIN_FREE_DISK is {human(floor)}; free some (paas doctor --fix) and push again"
            )
