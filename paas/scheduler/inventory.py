"""What runs, for many apps at once: one Engine call, no inspect per container.

`host_containers.app_containers` inspects every container it returns (the SDK does), which is right
for one app and too slow for a page listing a hundred.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker

from paas.core import names
from paas.core.names import LABEL_APP, LABEL_INDEX, LABEL_RELEASE, LABEL_TYPE


@dataclass(frozen=True)
class ProcessRecord:
    app: str
    type: str
    index: int
    release: int
    state: str  # running, restarting, exited, created, dead, paused, removing
    container: str

    @property
    def dyno(self) -> str:
        return f"{self.type}.{self.index}"


def _int(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def _index(labels: dict[str, str]) -> int:
    """The replica number: our label, or the slot in a swarm task's name (`<service>.<slot>.<id>`)."""
    task = labels.get(names.LABEL_SWARM_TASK)
    if task and LABEL_INDEX not in labels:
        return _int(task.rsplit(".", 2)[-2] if task.count(".") >= 2 else None)
    return _int(labels.get(LABEL_INDEX))


def processes(client: docker.DockerClient, instance: str, app: str | None = None) -> list[ProcessRecord]:
    """Every process container of this PaaS instance (or of one app), in any state."""
    labels = names.label_filter(instance, role=names.ROLE_PROCESS)
    if app is not None:
        labels.append(f"{LABEL_APP}={app}")
    out = []
    for row in client.api.containers(all=True, filters={"label": labels}):
        lab = row.get("Labels") or {}
        out.append(
            ProcessRecord(
                app=lab.get(LABEL_APP, ""),
                type=lab.get(LABEL_TYPE, "?"),
                index=_index(lab),
                release=_int(lab.get(LABEL_RELEASE)),
                state=row.get("State", "unknown"),
                container=row["Id"],
            )
        )
    return sorted(out, key=lambda p: (p.app, p.type, p.index, p.release))
