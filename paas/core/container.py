"""What a container of ours gets beyond its image, built in one place and added to by plugins.

Services fill one `ContainerSettings` per release (`paas_pre_deploy` lets plugins add to it);
the scheduler turns it into Engine API arguments. Every kind of container of an app (processes,
release phase, postdeploy, `run`, cron) starts from the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Bind:
    """A host directory mounted into the container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass
class ContainerSettings:
    env: dict[str, str] = field(default_factory=dict)
    binds: list[Bind] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)
    memory: str | None = None  # docker's size syntax: 512m, 1g
    cpus: float | None = None
    pids: int | None = None

    def add_bind(self, source: Path, target: str, read_only: bool = False) -> None:
        if any(b.target == target for b in self.binds):
            raise ValueError(f"two mounts at {target}")
        self.binds.append(Bind(source, target, read_only))
