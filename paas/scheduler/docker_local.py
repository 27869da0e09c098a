"""Containers for each process type and replica on the local dockerd.

Every container carries labels (app, release, process type, index) so what runs can always be
compared with the store. Web containers publish $PORT on 127.0.0.1 only; the router proxies there.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

import docker
import requests
from docker.models.containers import Container
from docker.types import Mount

from paas.core import names
from paas.core.container import ContainerSettings, log_config
from paas.core.names import APP_PORT, APP_UID, LABEL_INDEX, LABEL_PORT, LABEL_TYPE
from paas.errors import PaasError
from paas.scheduler import trouble
from paas.scheduler.interface import Converged, Desired, LogSource, ProcessFailed, ProcessRow, ProcessSpec

__all__ = ["DockerLocal", "ProcessFailed", "ProcessSpec"]

GONE = ("exited", "dead", "created", "removing")  # states docker will not restart by itself


FORBIDDEN_SOURCES = {Path("/"), Path("/var/run/docker.sock"), Path("/run/docker.sock")}
_image_users: dict[str, str] = {}


def is_root(user: str) -> bool:
    """`USER` values that mean uid 0 (names other than root are resolved by the builder)."""
    name = user.partition(":")[0]
    return name in ("", "root") or (name.isdigit() and int(name) == 0)


def run_user(client: docker.DockerClient, image: str) -> str:
    """The user an app container runs as: the image's own when it is not root, else the app user
    (uid 1000). Buildpack images say `USER app`; the Dockerfile builder fixes root images."""
    if image not in _image_users:
        try:
            user = (client.images.get(image).attrs.get("Config") or {}).get("User") or ""
        except docker.errors.DockerException:
            user = ""
        _image_users[image] = f"{APP_UID}:{APP_UID}" if is_root(user) else user
    return _image_users[image]


def engine_kwargs(
    client: docker.DockerClient,
    image: str,
    settings: ContainerSettings,
    labels: dict[str, str],
    env: dict[str, str],
    process_type: str | None = None,
    aliases: tuple[str, ...] = (),
) -> dict:
    """Engine API arguments for one app container: `settings` (config, plugins' additions, the
    limits of its process type), our labels and its own env on top, and the hardening every app
    container gets (no capabilities, no-new-privileges, an unprivileged user, no swap, log caps)."""
    limits = settings.limits_for(process_type)
    kwargs: dict = {
        "environment": {**settings.env, **env},
        "labels": {**settings.labels, **labels},
        "init": True,
        "user": run_user(client, image),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "log_config": log_config(),
    }
    if settings.cap_add:
        kwargs["cap_add"] = list(settings.cap_add)
    for b in settings.binds:
        if Path(b.source).resolve() in FORBIDDEN_SOURCES:
            raise PaasError(f"refusing to mount {b.source} into an app container")
    if settings.binds:
        kwargs["mounts"] = [
            Mount(b.target, str(b.source), type="bind", read_only=b.read_only) for b in settings.binds
        ]
    if limits.memory:
        kwargs["mem_limit"] = limits.memory
        kwargs["memswap_limit"] = limits.memory  # the same: no swap on top
    if limits.cpus:
        kwargs["nano_cpus"] = int(limits.cpus * 1e9)
    if limits.pids:
        kwargs["pids_limit"] = limits.pids
    if settings.networks:
        network = settings.networks[0]
        kwargs["network"] = network
        if aliases:
            kwargs["networking_config"] = {network: client.api.create_endpoint_config(aliases=list(aliases))}
    return kwargs


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


class Survey:
    """Every container of one instance, listed once for a reconcile pass over many apps.

    Asking dockerd app by app costs one listing per app and role plus one inspect per container
    (the SDK inspects everything it lists), every pass: with 200 apps, over a thousand calls
    every few seconds. A survey makes one listing (the summaries: labels, state) and one read
    of the engine's events since the last survey, and inspects only the containers that are new,
    changed state, had an event (a start, a death, an OOM kill, a restart) or started less than
    a minute ago (dockerd's events do not outlive a dockerd restart); the others' details are
    kept between passes (`_kept`, pruned to what is listed: never more than what
    exists). If the events cannot be read, everything is inspected. Within the pass each app's
    containers are read as listed: the pass converges each app once, so nothing it changes is
    read back from the survey."""

    def __init__(
        self,
        client: docker.DockerClient,
        instance: str,
        changed: Callable[[str, float], bool] | None = None,
    ) -> None:
        self.client = client
        self.instance = instance
        # Whether an app was changed by someone else after the listing (a deploy that released
        # its lock since): its containers are listed again, under the lock the pass now holds.
        self.changed = changed
        self.listed_at = 0.0
        self._checked: set[str] = set()
        self.fresh: set[str] = set()  # ids inspected or confirmed by this survey
        self._summaries: dict[tuple[str, str], list[dict]] | None = None  # (app, role) -> summaries
        self._touched: set[str] | None = None  # ids with events since the last survey (None: all)

    def _list(self) -> dict[tuple[str, str], list[dict]]:
        if self._summaries is None:
            self._touched = _events_since_last(self.client, self.instance)
            self.listed_at = time.time()
            found = self.client.api.containers(all=True, filters={"label": names.label_filter(self.instance)})
            grouped: dict[tuple[str, str], list[dict]] = {}
            for summary in found:
                labels = summary.get("Labels") or {}
                key = (labels.get(names.LABEL_APP, ""), labels.get(names.LABEL_ROLE, ""))
                grouped.setdefault(key, []).append(summary)
            self._summaries = grouped
            _prune_kept(self.client, self.instance, {s["Id"] for s in found})
        return self._summaries

    def _relist_if_changed(self, app: str) -> None:
        summaries = self._list()
        if app in self._checked:
            return
        self._checked.add(app)
        if self.changed is None or not self.changed(app, self.listed_at):
            return
        found = self.client.api.containers(
            all=True, filters={"label": names.label_filter(self.instance, app)}
        )
        for key in [k for k in summaries if k[0] == app]:
            del summaries[key]
        for summary in found:
            role = (summary.get("Labels") or {}).get(names.LABEL_ROLE, "")
            summaries.setdefault((app, role), []).append(summary)
        self._touched = None if self._touched is None else self._touched | {s["Id"] for s in found}

    def containers(self, app: str, role: str) -> list[Container]:
        self._relist_if_changed(app)
        out = []
        for summary in self._list().get((app, role), []):
            container = _details(self.client, self.instance, summary, self._touched)
            if container is not None:
                self.fresh.add(container.id)
                out.append(container)
        return out


_survey: ContextVar[Survey | None] = ContextVar("paas_docker_local_survey", default=None)
_kept_lock = threading.Lock()
# (engine, instance) -> container id -> (its state when inspected, the inspected container)
_kept: dict[tuple[str, str], dict[str, tuple[str, Container]]] = {}
_last_survey: dict[tuple[str, str], float] = {}  # (engine, instance) -> when its events were read
EVENTS = ["start", "die", "oom", "restart", "kill", "stop", "pause", "unpause", "health_status"]


def _events_since_last(client: docker.DockerClient, instance: str) -> set[str] | None:
    """Ids of the instance's containers with an event since the last survey (None: unknown, as
    on the first survey of this process or when the events cannot be read)."""
    key = (client.api.base_url, instance)
    until = time.time()
    with _kept_lock:
        since = _last_survey.get(key)
        _last_survey[key] = until
    if since is None:
        return None
    try:
        found = client.api.events(
            since=since - 2,  # the engine's clock may lag ours a little: read a little twice
            until=until,
            filters={"type": "container", "label": f"{names.LABEL_INSTANCE}={instance}", "event": EVENTS},
            decode=True,
        )
        return {e.get("Actor", {}).get("ID") or e.get("id", "") for e in found}
    except (docker.errors.DockerException, requests.RequestException, ValueError):
        with _kept_lock:
            _last_survey.pop(key, None)
        return None


def _details(
    client: docker.DockerClient, instance: str, summary: dict, touched: set[str] | None
) -> Container | None:
    """The inspected container of a listed summary: the one kept since the last survey when
    nothing happened to it since, else inspected now (None: gone meanwhile)."""
    cid, state = summary["Id"], str(summary.get("State", ""))
    with _kept_lock:
        known = _kept.setdefault((client.api.base_url, instance), {}).get(cid)
    settled = "second" not in str(summary.get("Status", ""))  # up a minute or more: no news
    if known is not None and known[0] == state and settled and touched is not None and cid not in touched:
        return known[1]
    try:
        container = client.containers.get(cid)
    except docker.errors.NotFound:
        return None
    with _kept_lock:
        _kept[(client.api.base_url, instance)][cid] = (state, container)
    return container


def _prune_kept(client: docker.DockerClient, instance: str, listed: set[str]) -> None:
    with _kept_lock:
        kept = _kept.get((client.api.base_url, instance), {})
        for gone in set(kept) - listed:
            del kept[gone]


@contextmanager
def survey(
    client: docker.DockerClient, instance: str, changed: Callable[[str, float], bool] | None = None
) -> Iterator[Survey]:
    """Within this block (this thread only), listings of the instance's containers come from one
    survey (see Survey): a reconcile pass enters it around its loop over the apps."""
    current = Survey(client, instance, changed)
    token = _survey.set(current)
    try:
        yield current
    finally:
        _survey.reset(token)


def _surveyed(client: docker.DockerClient, instance: str) -> Survey | None:
    current = _survey.get()
    if current is None or current.instance != instance or current.client.api.base_url != client.api.base_url:
        return None
    return current


def containers_of(client: docker.DockerClient, instance: str, app: str, role: str) -> list[Container]:
    """The app's containers of `role`, in any state (from the pass's survey when one is on)."""
    current = _surveyed(client, instance)
    if current is not None:
        return current.containers(app, role)
    return client.containers.list(all=True, filters={"label": names.label_filter(instance, app, role)})


def app_containers(
    client: docker.DockerClient, instance: str, app: str, all_states: bool = True
) -> list[Container]:
    if all_states:
        found = containers_of(client, instance, app, names.ROLE_PROCESS)
    else:
        labels = names.label_filter(instance, app, names.ROLE_PROCESS)
        found = client.containers.list(filters={"label": labels})
    return [c for c in found if names.LABEL_SWARM_SERVICE not in c.labels]  # the swarm's own tasks


def web_upstreams(containers: Iterable[Container]) -> list[str]:
    """`<container address>:<port>` for every running web container.

    The router talks to the container on its own network, as the health checks do: with docker's
    userland proxy on, the published loopback port goes through docker-proxy, a userland copy
    that cost more CPU per request than nginx itself (bench/router.py); bootstrap.sh turns it off,
    but a server's dockerd may run either way. The published port is the fallback for a
    container without an address of its own.
    """
    upstreams = []
    current = _survey.get()
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

    def __init__(
        self, client: docker.DockerClient, instance: str, host_ports: tuple[int, int] | None = None
    ) -> None:
        self.client = client
        self.instance = instance
        self.host_ports = host_ports

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
