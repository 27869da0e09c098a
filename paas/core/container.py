"""What a container of ours gets beyond its image, built in one place and added to by plugins.

Services fill one `ContainerSettings` per release (`paas_pre_deploy` lets plugins add to it);
the scheduler turns it into Engine API arguments, the same hardening included every time:
all capabilities dropped, no-new-privileges, an unprivileged user, memory/CPU/pids limits and
the app's own network. Every kind of container of an app (processes, release phase,
postdeploy, `run`, cron) starts from the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

# docker's log caps, on every container we create (processes, one-offs, cron, release phase,
# postdeploy, builds, services, the registry): without them dockerd's json-file log of a
# container grows until the disk is full (`run:detached app yes`).
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}


def log_config(options: dict[str, str] | None = None) -> dict:
    """The Engine API's LogConfig: json-file (what `logs` reads) with the caps."""
    return {"type": "json-file", "config": dict(options or LOG_OPTIONS)}


@dataclass(frozen=True)
class Bind:
    """A host directory mounted into the container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Limits:
    """Resource ceilings; None leaves the value to the layer below (app default, then server)."""

    memory: str | None = None  # docker's size syntax: 512m, 1g
    cpus: float | None = None
    pids: int | None = None

    def over(self, base: Limits) -> Limits:
        """These limits where set, `base`'s elsewhere."""
        return Limits(
            memory=self.memory if self.memory is not None else base.memory,
            cpus=self.cpus if self.cpus is not None else base.cpus,
            pids=self.pids if self.pids is not None else base.pids,
        )

    def as_dict(self) -> dict[str, str | float | int | None]:
        return {"memory": self.memory, "cpus": self.cpus, "pids": self.pids}


@dataclass
class ContainerSettings:
    env: dict[str, str] = field(default_factory=dict)
    binds: list[Bind] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)  # for every process type
    type_limits: dict[str, Limits] = field(default_factory=dict)  # `resource:limit --process-type`
    cap_add: list[str] = field(default_factory=list)  # everything else is dropped

    def add_bind(self, source: Path, target: str, read_only: bool = False) -> None:
        if any(b.target == target for b in self.binds):
            raise ValueError(f"two mounts at {target}")
        self.binds.append(Bind(source, target, read_only))

    def limits_for(self, process_type: str | None) -> Limits:
        own = self.type_limits.get(process_type or "")
        return own.over(self.limits) if own else self.limits

    def for_type(self, process_type: str) -> ContainerSettings:
        """A copy whose limits are those of one process type."""
        return replace(self, limits=self.limits_for(process_type), type_limits={})
