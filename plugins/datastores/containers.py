"""Backing-service containers (Postgres, Redis) on the local dockerd, and commands inside them.

One container per service, its data in a named volume, hardened like app containers: every
capability dropped, no-new-privileges, the service's own unprivileged user (the image's USER,
owner of the data folder in the volume), memory/CPU/pids limits and Docker's restart policy. It
starts on no network at all: it joins the network of each app linked to it (with an alias the
app resolves) and leaves it when unlinked, so only linked apps can reach it.

Commands in the container (health checks, pg_dump, psql) go through the Engine API's exec with
a hijacked socket, so bytes stream both ways without a shell or a temporary file on the host.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
from docker.models.containers import Container
from docker.types import Mount

from paas.core import names
from paas.core.container import Limits, log_config
from paas.core.engine import demux
from paas.plugin_api import PaasError

RUNNING = ("running", "restarting")


@dataclass(frozen=True)
class ServiceSpec:
    instance: str
    kind: str
    name: str
    image: str
    volume: str
    data_path: str  # where the volume is mounted (owned by the image's user)
    limits: Limits
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # never a secret: `docker inspect` shows it


def find(client: docker.DockerClient, instance: str, kind: str, name: str) -> Container | None:
    found = client.containers.list(
        all=True, ignore_removed=True, filters={"label": names.service_filter(instance, kind, name)}
    )
    return found[0] if found else None


def all_services(client: docker.DockerClient, instance: str, kind: str) -> list[Container]:
    return client.containers.list(
        all=True, ignore_removed=True, filters={"label": names.service_filter(instance, kind)}
    )


def ensure_volume(client: docker.DockerClient, spec: ServiceSpec) -> None:
    try:
        client.volumes.get(spec.volume)
    except docker.errors.NotFound:
        client.volumes.create(spec.volume, labels=names.service_labels(spec.instance, spec.kind, spec.name))


def create(client: docker.DockerClient, spec: ServiceSpec) -> Container:
    """Create and start the container, attached to no network (links add them)."""
    ensure_volume(client, spec)
    kwargs: dict = {
        "name": names.service_container(spec.instance, spec.kind, spec.name),
        "hostname": names.service_host(spec.kind, spec.name),
        "labels": names.service_labels(spec.instance, spec.kind, spec.name),
        "detach": True,
        "init": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "restart_policy": {"Name": "unless-stopped"},
        "log_config": log_config(),
        "mounts": [Mount(spec.data_path, spec.volume, type="volume")],
    }
    if spec.command:
        kwargs["command"] = spec.command
    if spec.env:
        kwargs["environment"] = dict(spec.env)
    if spec.limits.memory:
        kwargs["mem_limit"] = spec.limits.memory
        kwargs["memswap_limit"] = spec.limits.memory
    if spec.limits.cpus:
        kwargs["nano_cpus"] = int(spec.limits.cpus * 1e9)
    if spec.limits.pids:
        kwargs["pids_limit"] = spec.limits.pids
    try:
        container = client.containers.create(spec.image, **kwargs)
    except docker.errors.APIError as exc:
        raise PaasError(f"cannot create the {spec.kind} container: {exc.explanation or exc}") from None
    try:  # off the default bridge before it starts: no network but those of linked apps
        client.networks.get("bridge").disconnect(container, force=True)
    except docker.errors.DockerException:
        pass
    container.start()
    container.reload()
    return container


def networks_of(container: Container) -> set[str]:
    return set((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})


def address_on(container: Container, network: str) -> str | None:
    """The container's IPv4 address on one network (after a reload)."""
    container.reload()
    net = ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
    return net.get("IPAddress") or None


def connect(client: docker.DockerClient, container: Container, network: str, alias: str) -> None:
    try:
        client.networks.get(network).connect(container, aliases=[alias])
    except docker.errors.APIError as exc:
        if "already exists" not in str(exc):
            raise PaasError(f"cannot connect the service to {network}: {exc.explanation or exc}") from None


def disconnect(client: docker.DockerClient, container: Container, network: str) -> None:
    try:
        client.networks.get(network).disconnect(container, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "is not connected" not in str(exc):
            raise PaasError(
                f"cannot disconnect the service from {network}: {exc.explanation or exc}"
            ) from None


def remove(container: Container, timeout: int = 10) -> None:
    try:
        container.stop(timeout=timeout)
    except docker.errors.DockerException:
        pass
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


def remove_volume(client: docker.DockerClient, volume: str) -> None:
    try:
        client.volumes.get(volume).remove(force=True)
    except docker.errors.NotFound:
        pass


def exec_stream(
    client: docker.DockerClient,
    container: Container,
    cmd: list[str],
    out: Callable[[bytes], None],
    err: Callable[[bytes], None],
    read_in: Callable[[int], bytes] | None = None,
    tty: bool = False,
    size: tuple[int, int] | None = None,
    env: dict[str, str] | None = None,
    gone: Callable[[], bool] = lambda: False,
) -> int:
    """Run `cmd` in the container: stdin from `read_in` (until b""), stdout/stderr streamed to
    `out`/`err`; returns the exit status."""
    exec_id = client.api.exec_create(
        container.id, cmd, stdin=read_in is not None, stdout=True, stderr=True, tty=tty, environment=env
    )["Id"]
    sock = client.api.exec_start(exec_id, socket=True, tty=tty)
    raw: socket.socket = getattr(sock, "_sock", sock)
    if tty and size:
        try:
            client.api.exec_resize(exec_id, height=size[1], width=size[0])
        except docker.errors.DockerException:
            pass
    finished = threading.Event()

    def feed() -> None:
        try:
            while not finished.is_set() and (data := read_in(1 << 16)):  # type: ignore[misc]
                raw.sendall(data)
            if not tty:
                raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def watch() -> None:
        while not finished.wait(0.5):
            if gone():
                try:
                    raw.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return

    if read_in is not None:
        threading.Thread(target=feed, daemon=True).start()
    threading.Thread(target=watch, daemon=True).start()
    try:
        if tty:
            while data := raw.recv(1 << 16):
                out(data)
        else:
            demux(raw, out, err)
    except OSError:
        pass
    finally:
        finished.set()
        try:
            raw.close()
        except OSError:
            pass
    deadline = time.monotonic() + 5  # the exit code is set a moment after the stream ends
    while True:
        info = client.api.exec_inspect(exec_id)
        if not info.get("Running"):
            code = info.get("ExitCode")
            return 1 if code is None else int(code)
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.02)


def exec_capture(
    client: docker.DockerClient,
    container: Container,
    cmd: list[str],
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, bytes, bytes]:
    """Run `cmd` to its end: (status, stdout, stderr); `stdin` (a password, SQL) never touches a
    command line or a file."""
    out, err = bytearray(), bytearray()
    pending = [stdin] if stdin is not None else None

    def read_in(_n: int) -> bytes:
        return pending.pop() if pending else b""

    feed = read_in if pending is not None else None
    code = exec_stream(client, container, cmd, out.extend, err.extend, feed, env=env)
    return code, bytes(out), bytes(err)


def wait_healthy(
    client: docker.DockerClient,
    container: Container,
    probe: Callable[[], tuple[bool, str]],
    timeout: float,
    what: str,
) -> None:
    """Until `probe` says healthy in the running container; else one line with its last words."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        container.reload()
        if container.status == "running":
            ok, last = probe()
            if ok:
                return
        elif container.status in ("exited", "dead"):
            tail = container.logs(tail=5).decode(errors="replace").strip().splitlines()
            raise PaasError(f"{what} stopped: " + (tail[-1] if tail else f"status {container.status}"))
        if time.monotonic() > deadline:
            raise PaasError(
                f"{what} did not become healthy in {int(timeout)} s" + (f": {last}" if last else "")
            )
        time.sleep(0.3)
