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


def docker_root(ctx: Context) -> Path | None:
    try:
        return Path(ctx.docker.info().get("DockerRootDir") or "/var/lib/docker")
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
