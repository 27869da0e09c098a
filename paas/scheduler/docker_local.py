"""Containers for each process type and replica on the local dockerd.

Every container carries labels (app, release, process type, index) so what runs can always be
compared with the store. Web containers publish $PORT on 127.0.0.1 only; the router proxies there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import docker
from docker.models.containers import Container
from docker.types import Mount

from paas.core import names
from paas.core.container import ContainerSettings
from paas.core.names import APP_PORT, LABEL_INDEX, LABEL_PORT, LABEL_TYPE
from paas.errors import PaasError


class ProcessFailed(PaasError):
    """A new container did not come up; carries its last log lines."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class ProcessSpec:
    instance: str
    app: str
    release: int
    process_type: str
    index: int
    image: str
    settings: ContainerSettings  # config, plugin mounts, limits: the same for every container of a release
    port: int = APP_PORT  # $PORT for web: the builder's choice (EXPOSE for Dockerfile apps)

    @property
    def dyno(self) -> str:
        return f"{self.process_type}.{self.index}"


def engine_kwargs(settings: ContainerSettings, labels: dict[str, str], env: dict[str, str]) -> dict:
    """Engine API arguments for `settings`, our labels and the container's own env on top."""
    kwargs: dict = {
        "environment": {**settings.env, **env},
        "labels": {**settings.labels, **labels},
        "init": True,
    }
    if settings.binds:
        kwargs["mounts"] = [
            Mount(b.target, str(b.source), type="bind", read_only=b.read_only) for b in settings.binds
        ]
    if settings.memory:
        kwargs["mem_limit"] = settings.memory
    if settings.cpus:
        kwargs["nano_cpus"] = int(settings.cpus * 1e9)
    if settings.pids:
        kwargs["pids_limit"] = settings.pids
    if settings.networks:
        kwargs["network"] = settings.networks[0]
    return kwargs


def start_process(client: docker.DockerClient, spec: ProcessSpec) -> Container:
    """Start one container; web gets PORT and a loopback-only published port."""
    env = {"DYNO": spec.dyno, "PS": spec.dyno}
    ports = None
    if spec.process_type == "web":
        env["PORT"] = str(spec.port)
        ports = {f"{spec.port}/tcp": ("127.0.0.1", None)}
    name = f"paas-{spec.app}-{spec.process_type}-{spec.index}-v{spec.release}-{uuid.uuid4().hex[:6]}"
    labels = names.app_labels(
        spec.instance,
        spec.app,
        names.ROLE_PROCESS,
        **{
            names.LABEL_RELEASE: str(spec.release),
            LABEL_TYPE: spec.process_type,
            LABEL_INDEX: str(spec.index),
            LABEL_PORT: str(spec.port),
        },
    )
    return client.containers.run(
        spec.image,
        command=[spec.process_type],
        name=name,
        detach=True,
        ports=ports,
        restart_policy={"Name": "unless-stopped"},
        log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
        **engine_kwargs(spec.settings, labels, env),
    )


def container_port(container: Container) -> int:
    value = container.labels.get(LABEL_PORT, "")
    return int(value) if value.isdigit() else APP_PORT


def log_tail(container: Container, n: int = 30) -> list[str]:
    """The lines worth showing when a process fails: all of them if few, else the start (the
    first run usually says why) and the end (what it said last)."""
    try:
        raw = container.logs(tail=500).decode("utf-8", errors="replace")
    except docker.errors.DockerException:
        return []
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    if len(lines) <= n:
        return lines
    head = n * 2 // 5
    return [*lines[:head], "...", *lines[-(n - head) :]]


def started_at(container: Container) -> datetime | None:
    """When the container last started (docker gives nanoseconds; Python takes microseconds)."""
    text = container.attrs.get("State", {}).get("StartedAt") or ""
    if not text or text.startswith("0001-"):
        return None
    main, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{main}.{(frac or '0')[:6]:0<6}+00:00")


def host_port(container: Container) -> int | None:
    """The loopback port docker published $PORT on (from the container's last reload)."""
    ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
    bindings = ports.get(f"{container_port(container)}/tcp")
    if not bindings:
        return None
    for b in bindings:
        if b.get("HostIp") in ("127.0.0.1", "", "0.0.0.0"):
            return int(b["HostPort"])
    return None


def app_containers(
    client: docker.DockerClient, instance: str, app: str, all_states: bool = True
) -> list[Container]:
    labels = names.label_filter(instance, app, names.ROLE_PROCESS)
    return client.containers.list(all=all_states, filters={"label": labels})


def web_upstreams(containers: Iterable[Container]) -> list[str]:
    """`127.0.0.1:<port>` for every running web container."""
    upstreams = []
    for c in containers:
        if c.labels.get(LABEL_TYPE) != "web":
            continue
        try:
            c.reload()
        except docker.errors.NotFound:
            continue
        if c.status != "running":
            continue
        port = host_port(c)
        if port:
            upstreams.append(f"127.0.0.1:{port}")
    return sorted(upstreams)


def stop_and_remove(containers: Iterable[Container], timeout: int) -> None:
    """SIGTERM, wait up to `timeout`, SIGKILL, remove."""
    for c in containers:
        try:
            c.stop(timeout=timeout)
        except docker.errors.NotFound:
            continue
        except docker.errors.DockerException:
            pass
        try:
            c.remove(force=True)
        except docker.errors.DockerException:
            pass
