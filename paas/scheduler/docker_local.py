"""Containers for each process type and replica on the local dockerd.

Every container carries labels (app, release, process type, index) so what runs can always be
compared with the store. Web containers publish $PORT on 127.0.0.1 only; the router proxies there.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import docker
from docker.models.containers import Container

from paas.core import names
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
    env: dict[str, str]
    port: int = APP_PORT  # $PORT for web: the builder's choice (EXPOSE for Dockerfile apps)

    @property
    def dyno(self) -> str:
        return f"{self.process_type}.{self.index}"


def start_process(client: docker.DockerClient, spec: ProcessSpec) -> Container:
    """Start one container; web gets PORT and a loopback-only published port."""
    env = {**spec.env, "DYNO": spec.dyno, "PS": spec.dyno}
    ports = None
    if spec.process_type == "web":
        env["PORT"] = str(spec.port)
        ports = {f"{spec.port}/tcp": ("127.0.0.1", None)}
    name = f"paas-{spec.app}-{spec.process_type}-{spec.index}-v{spec.release}-{uuid.uuid4().hex[:6]}"
    return client.containers.run(
        spec.image,
        command=[spec.process_type],
        name=name,
        detach=True,
        environment=env,
        ports=ports,
        init=True,
        restart_policy={"Name": "unless-stopped"},
        labels=names.app_labels(
            spec.instance,
            spec.app,
            names.ROLE_PROCESS,
            **{
                names.LABEL_RELEASE: str(spec.release),
                LABEL_TYPE: spec.process_type,
                LABEL_INDEX: str(spec.index),
                LABEL_PORT: str(spec.port),
            },
        ),
        log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
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


def _crashed(container: Container) -> str | None:
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


def _http_answers(ip: str, port: int, host: str, timeout: float) -> bool:
    """True once the process answers an HTTP request with any status line."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: paas-check\r\n\r\n".encode())
            return sock.recv(12).startswith(b"HTTP/")
    except OSError:
        return False


def wait_until_serving(container: Container, timeout: float, host: str = "localhost") -> None:
    """Wait until the app answers HTTP on $PORT inside the container (with the app's Host).

    The published loopback port cannot tell (docker-proxy accepts even when nothing listens), so
    the check talks to the container's own address on the bridge network. An answer, not just an
    accepted connection, is required: a gunicorn whose workers fail to boot accepts, then dies.
    """
    deadline = time.monotonic() + timeout
    port = container_port(container)
    while True:
        container.reload()
        reason = _crashed(container)
        if reason:
            raise ProcessFailed(f"{reason} before answering on $PORT ({port})", log_tail(container))
        ip = container.attrs.get("NetworkSettings", {}).get("IPAddress")
        if ip and _http_answers(ip, port, host, timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
            return
        if time.monotonic() >= deadline:
            raise ProcessFailed(
                f"web process did not bind $PORT ({port}) and answer within {int(timeout)} s",
                log_tail(container),
            )
        time.sleep(0.1)


def started_at(container: Container) -> datetime | None:
    """When the container last started (docker gives nanoseconds; Python takes microseconds)."""
    text = container.attrs.get("State", {}).get("StartedAt") or ""
    if not text or text.startswith("0001-"):
        return None
    main, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{main}.{(frac or '0')[:6]:0<6}+00:00")


def settle(containers: list[Container], seconds: float) -> None:
    """Every new container must still be running, never restarted, `seconds` after it started:
    catches processes that start and then die. Counted from the start, so time spent booting and
    passing checks already counts."""
    if not containers:
        return
    for c in containers:
        c.reload()
    starts = [t for t in (started_at(c) for c in containers) if t is not None]
    if starts:
        remaining = (max(starts) - datetime.now(UTC)).total_seconds() + seconds
        if remaining > 0:
            time.sleep(remaining)
    else:
        time.sleep(seconds)
    for c in containers:
        c.reload()
        reason = _crashed(c)
        if reason:
            raise ProcessFailed(f"{reason} within {seconds:g} s of starting", log_tail(c))


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
