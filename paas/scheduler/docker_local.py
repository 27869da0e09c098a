"""Containers for each process type and replica on the local dockerd.

Every container carries labels (app, release, process type, index) so what runs can always be
compared with the store. Web containers publish $PORT on 127.0.0.1 only; the router proxies there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime

import docker
from docker.models.containers import Container

from paas.core import names
from paas.core.names import APP_PORT, LABEL_INDEX, LABEL_PORT, LABEL_TYPE
from paas.scheduler import trouble
from paas.scheduler.host_containers import (
    Survey,
    app_containers,
    current_survey,
    engine_kwargs,
    stop_and_remove,
    survey,
)
from paas.scheduler.interface import Converged, Desired, LogSource, ProcessFailed, ProcessRow, ProcessSpec

__all__ = ["DockerLocal", "ProcessFailed", "ProcessSpec"]

GONE = ("exited", "dead", "created", "removing")  # states docker will not restart by itself


def start_process(
    client: docker.DockerClient, spec: ProcessSpec, host_ports: tuple[int, int] | None = None
) -> Container:
    """Start one container; web gets PORT and a loopback-only published port (from `host_ports`,
    PAAS_LOCAL_PORTS, when given; else any free one)."""
    env = {"DYNO": spec.dyno, "PS": spec.dyno}
    ports = None
    if spec.process_type == "web":
        env["PORT"] = str(spec.port)
        ports = {
            f"{spec.port}/tcp": ("127.0.0.1", f"{host_ports[0]}-{host_ports[1]}" if host_ports else None)
        }
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
        # Other processes of the app reach this one as `web` or `web.1` on the app's network.
        **engine_kwargs(
            client,
            spec.image,
            spec.settings,
            labels,
            env,
            spec.process_type,
            (spec.process_type, spec.dyno),
        ),
    )


def container_ip(container: Container) -> str | None:
    """The container's address on its network (the app's own, or the default bridge)."""
    settings = container.attrs.get("NetworkSettings", {})
    for net in (settings.get("Networks") or {}).values():
        if net.get("IPAddress"):
            return net["IPAddress"]
    return settings.get("IPAddress") or None


def container_port(container: Container) -> int:
    value = container.labels.get(LABEL_PORT, "")
    return int(value) if value.isascii() and value.isdigit() else APP_PORT


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


def web_upstreams(containers: Iterable[Container]) -> list[str]:
    """`<container address>:<port>` for every running web container.

    The router talks to the container on its own network, as the health checks do: with docker's
    userland proxy on, the published loopback port goes through docker-proxy, a userland copy
    that cost more CPU per request than nginx itself (bench/router.py); bootstrap.sh turns it off,
    but a server's dockerd may run either way. The published port is the fallback for a
    container without an address of its own.
    """
    upstreams = []
    current = current_survey()
    for c in containers:
        if c.labels.get(LABEL_TYPE) != "web":
            continue
        if current is None or c.id not in current.fresh:  # as the pass's survey saw it, or now
            try:
                c.reload()
            except docker.errors.NotFound:
                continue
        if c.status != "running":
            continue
        ip = container_ip(c)
        if ip:
            upstreams.append(f"{ip}:{container_port(c)}")
            continue
        port = host_port(c)
        if port:
            upstreams.append(f"127.0.0.1:{port}")
    return sorted(upstreams)


def crashed(container: Container) -> str | None:
    """Why the container is no longer a healthy first run, or None."""
    state = container.attrs.get("State", {})
    name = f"{container.labels.get(LABEL_TYPE)}.{container.labels.get(LABEL_INDEX)}"
    restarts = container.attrs.get("RestartCount", 0)
    if state.get("Status") in ("exited", "dead"):
        return f"{name} exited with status {state.get('ExitCode')}"
    if state.get("Restarting"):
        return f"{name} exited with status {state.get('ExitCode')} (restarting)"
    if restarts:
        return f"{name} crashed and was restarted ({restarts} time(s))"
    return None


def process_state(state: dict) -> str:
    """docker's state, with `oom-killed` for a process the kernel killed for passing its memory
    limit (until it runs again; docker restarts it with a growing delay)."""
    if state.get("OOMKilled") and (state.get("Restarting") or not state.get("Running")):
        return "oom-killed"
    return "restarting" if state.get("Restarting") else state.get("Status", "unknown")


class ContainerProbe:
    """A new container as the checks see it: probed on its own address on its network."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.type = container.labels.get(LABEL_TYPE, "")
        self.index = int(container.labels.get(LABEL_INDEX, "0") or 0)
        self.port = container_port(container)

    @property
    def dyno(self) -> str:
        return f"{self.type}.{self.index}"

    def refresh(self) -> None:
        self.container.reload()

    def endpoint(self) -> tuple[str, int] | None:
        ip = container_ip(self.container)
        return (ip, self.port) if ip else None

    def crashed(self) -> str | None:
        return crashed(self.container)

    def log_tail(self) -> list[str]:
        return log_tail(self.container)

    def started_at(self) -> datetime | None:
        return started_at(self.container)

    def preparing(self) -> bool:
        return False  # the image is on this host: the container exists, so it is starting


class DockerLocal:
    """The `docker-local` scheduler: one container per process on this host's dockerd."""

    name = names.SCHEDULER_LOCAL
    network_driver = "bridge"

    def __init__(
        self, client: docker.DockerClient, instance: str, host_ports: tuple[int, int] | None = None
    ) -> None:
        self.client = client
        self.instance = instance
        self.host_ports = host_ports

    def prepare(self) -> None:
        """Nothing: this host's engine is all it needs."""

    def processes(self, app: str) -> list[Container]:
        return app_containers(self.client, self.instance, app)

    def release_of(self, handle: Container) -> int:
        value = handle.labels.get(names.LABEL_RELEASE, "")
        return int(value) if value.isdigit() else 0

    def type_of(self, handle: Container) -> str:
        return handle.labels.get(LABEL_TYPE, "")

    def start(self, specs: Iterable[ProcessSpec]) -> list[Container]:
        started: list[Container] = []
        try:
            for spec in specs:
                started.append(start_process(self.client, spec, self.host_ports))
        except BaseException:
            stop_and_remove(started, timeout=1)
            raise
        return started

    def probes(self, started: Iterable[Container]) -> list[ContainerProbe]:
        return [ContainerProbe(c) for c in started]

    def upstreams(self, handles: Iterable[Container]) -> list[str]:
        return web_upstreams(handles)

    def stop(self, handles: Iterable[Container], timeout: int, wait: bool = True) -> None:
        stop_and_remove(handles, timeout)  # always waits: the next deploy may reuse their names

    def survey(self, changed: Callable[[str, float], bool] | None = None) -> AbstractContextManager[Survey]:
        """One listing for a pass over many apps (see Survey); `changed(app, since)`: whether
        someone changed the app after `since` (its lock released since)."""
        return survey(self.client, self.instance, changed)

    def fingerprint(self, app: str) -> tuple | None:
        """See Survey.fingerprint (None outside a pass's survey)."""
        current = current_survey()
        if current is None or current.instance != self.instance:
            return None
        if current.client.api.base_url != self.client.api.base_url:
            return None
        return current.fingerprint(app)

    def converge(self, app: str, want: Desired | None) -> Converged:
        """One container per (type, index) of the release; crashed ones are docker's to restart
        (restart policy), exited or never-started ones are replaced here."""
        found = app_containers(self.client, self.instance, app)
        done = Converged(troubles=trouble.containers(app, found))
        if want is None:
            if found:
                stop_and_remove(found, timeout=5)
                done.actions.append(f"removed {len(found)} container(s) of a stopped or undeployed app")
            return done
        desired = {(t, i) for t, n in want.formation.items() for i in range(1, n + 1)}
        keep: dict[tuple[str, int], Container] = {}
        remove = []
        for c in found:
            key = (c.labels.get(LABEL_TYPE, ""), int(c.labels.get(LABEL_INDEX, "0") or 0))
            if c.labels.get(names.LABEL_RELEASE) != str(want.release) or key not in desired or key in keep:
                remove.append(c)
            elif c.status in GONE:
                remove.append(c)
            else:
                keep[key] = c
        if remove:
            stop_and_remove(remove, timeout=5)
            done.actions.append(f"removed {len(remove)} stray container(s)")
        for ptype, index in sorted(desired - set(keep)):
            spec = want.spec(ptype, index)
            container = start_process(self.client, spec, self.host_ports)
            if ptype == "web":
                done.started.append(container)
            done.actions.append(f"started {spec.dyno}")
            keep[(ptype, index)] = container
        done.current = list(keep.values())
        return done

    def log_sources(self, app: str, process_type: str | None) -> list[LogSource]:
        return []  # every process is a container here: `logs` reads them with the cron runs

    def elsewhere(self, app: str) -> list[ProcessRow]:
        return []

    def rows(self, app: str) -> list[ProcessRow]:
        out = []
        for c in self.processes(app):
            state = c.attrs.get("State", {})
            out.append(
                ProcessRow(
                    type=c.labels.get(LABEL_TYPE, "?"),
                    index=int(c.labels.get(LABEL_INDEX, "0") or 0),
                    state=process_state(state),
                    release=self.release_of(c),
                    started_at=started_at(c) if state.get("Running") else None,
                    restarts=int(c.attrs.get("RestartCount", 0)),
                    id=c.short_id,
                    node="",
                )
            )
        return out
