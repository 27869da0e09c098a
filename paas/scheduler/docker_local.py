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

import docker
from docker.models.containers import Container

from paas.errors import PaasError

APP_PORT = 5000
LABEL_APP = "paas.app"
LABEL_RELEASE = "paas.release"
LABEL_TYPE = "paas.process_type"
LABEL_INDEX = "paas.index"
LABEL_ROLE = "paas.role"
LABEL_INSTANCE = "paas.instance"
LABEL_PORT = "paas.port"


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
        labels={
            LABEL_APP: spec.app,
            LABEL_RELEASE: str(spec.release),
            LABEL_TYPE: spec.process_type,
            LABEL_INDEX: str(spec.index),
            LABEL_ROLE: "process",
            LABEL_INSTANCE: spec.instance,
            LABEL_PORT: str(spec.port),
        },
        log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
    )


def container_port(container: Container) -> int:
    value = container.labels.get(LABEL_PORT, "")
    return int(value) if value.isdigit() else APP_PORT


def log_tail(container: Container, n: int = 20) -> list[str]:
    try:
        raw = container.logs(tail=n).decode("utf-8", errors="replace")
    except docker.errors.DockerException:
        return []
    return [ln for ln in raw.splitlines() if ln.strip()]


def wait_until_serving(container: Container, timeout: float) -> None:
    """Wait until the app accepts TCP connections on $PORT inside the container.

    The published loopback port cannot tell (docker-proxy accepts even when nothing listens), so
    the check connects to the container's own address on the bridge network.
    """
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        if (
            state.get("Status") in ("exited", "dead")
            or state.get("Restarting")
            or container.attrs.get("RestartCount", 0)
        ):
            code = state.get("ExitCode")
            raise ProcessFailed(
                f"{container.labels.get(LABEL_TYPE)}.{container.labels.get(LABEL_INDEX)} "
                f"exited with status {code} before binding $PORT ({container_port(container)})",
                log_tail(container),
            )
        ip = container.attrs.get("NetworkSettings", {}).get("IPAddress")
        if ip:
            try:
                with socket.create_connection((ip, container_port(container)), timeout=0.5):
                    return
            except OSError:
                pass
        if time.monotonic() >= deadline:
            raise ProcessFailed(
                f"web process did not bind $PORT ({container_port(container)}) within {int(timeout)} s",
                log_tail(container),
            )
        time.sleep(0.1)


def wait_until_running(container: Container, settle: float) -> None:
    """Non-web processes: still running after a short settle period."""
    time.sleep(settle)
    container.reload()
    state = container.attrs.get("State", {})
    if state.get("Status") != "running" or container.attrs.get("RestartCount", 0):
        raise ProcessFailed(
            f"{container.labels.get(LABEL_TYPE)}.{container.labels.get(LABEL_INDEX)} "
            f"exited with status {state.get('ExitCode')}",
            log_tail(container),
        )


def host_port(container: Container) -> int | None:
    container.reload()
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
    labels = [f"{LABEL_INSTANCE}={instance}", f"{LABEL_APP}={app}", f"{LABEL_ROLE}=process"]
    return client.containers.list(all=all_states, filters={"label": labels})


def web_upstreams(containers: Iterable[Container]) -> list[str]:
    """`127.0.0.1:<port>` for every running web container."""
    upstreams = []
    for c in containers:
        if c.labels.get(LABEL_TYPE) != "web" or c.status != "running":
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
