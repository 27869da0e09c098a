"""The `swarm` scheduler: each process type of a deploy is a Docker Swarm service.

A service carries the labels today's containers carry (app, release, process type, port) on
itself and on its tasks' containers, the limits, env and mounts of its process type, and joins
the app's attachable overlay network with endpoint mode `dnsrr` (the ingress routing mesh does
not answer on these machines). Web tasks publish $PORT in host mode on a port docker picks on
their node: the router proxies to `<node address>:<port>` of every running task, wherever it runs,
and the reconcile loop re-reads those when tasks move.

Why a service per deploy rather than `docker service update`: Swarm's own rolling update retires
an old task as soon as its replacement is "running", before our health checks (which talk to the
task from this host) can pass and before nginx knows the new address. So a deploy starts the new
release's services next to the old ones (start-first), the service layer runs the same checks as
for docker-local against every new task, moves the route, and only then removes the old services;
a failed check removes the new services and the running release never noticed (the revert).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import docker
import requests
from docker.models.services import Service
from docker.types import (
    EndpointSpec,
    Mount,
    NetworkAttachmentConfig,
    Resources,
    RestartPolicy,
    ServiceMode,
)
from docker.types.daemon import CancellableStream
from docker.utils import parse_bytes

from paas.core import names
from paas.core.container import LOG_OPTIONS
from paas.core.names import APP_PORT, LABEL_PORT, LABEL_RELEASE, LABEL_TYPE
from paas.core.output import LineSplitter
from paas.plugin_api import PaasError
from paas.scheduler import trouble
from paas.scheduler.host_containers import FORBIDDEN_SOURCES, run_user
from paas.scheduler.interface import Converged, Desired, LogSource, ProcessRow, ProcessSpec, Trouble

CRASHES = ("failed", "rejected", "complete", "orphaned")  # a task that ended on its own
REJECTIONS = 3  # rejections of one slot (by different nodes, mostly) before a deploy gives up
# Before a task's container starts: placed, then its node pulls the image ("preparing").
PREPARING = ("new", "allocated", "pending", "assigned", "accepted", "preparing")
BOOTING = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting")


def parse_time(text: str | None) -> datetime | None:
    """Swarm's timestamps carry nanoseconds; Python takes microseconds."""
    if not text or text.startswith("0001-"):
        return None
    main, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{main}.{(frac or '0')[:6]:0<6}+00:00").astimezone(UTC)


def is_manager(client: docker.DockerClient) -> bool:
    info = client.info().get("Swarm") or {}
    return info.get("LocalNodeState") == "active" and bool(info.get("ControlAvailable"))


class Node(NamedTuple):
    addr: str  # where this host reaches it
    hostname: str
    ready: bool


NO_NODE = Node("", "", False)


def node_addresses(client: docker.DockerClient) -> dict[str, Node]:
    """Node id -> where it is, its name, whether it is up."""
    out = {}
    for node in client.api.nodes():
        status = node.get("Status") or {}
        addr = status.get("Addr") or ""
        if addr in ("", "0.0.0.0"):  # a manager may report its advertise address only here
            addr = ((node.get("ManagerStatus") or {}).get("Addr") or "").rpartition(":")[0]
        name = (node.get("Description") or {}).get("Hostname") or node["ID"][:12]
        out[node["ID"]] = Node(addr, name, status.get("State") == "ready")
    return out


def _labels(service: Service) -> dict[str, str]:
    return service.attrs.get("Spec", {}).get("Labels") or {}


def _tasks(client: docker.DockerClient, service_id: str) -> list[dict]:
    try:
        return client.api.tasks(filters={"service": service_id})
    except docker.errors.NotFound:
        return []


def _current(tasks: list[dict], slot: int) -> dict | None:
    """The task swarm wants running in `slot` (the newest, when it replaced one)."""
    mine = [t for t in tasks if t.get("Slot") == slot and t.get("DesiredState") == "running"]
    return max(mine, key=lambda t: t.get("CreatedAt", ""), default=None)


def _refused(task: dict) -> bool:
    """The task never ran the app: refused by its node, or its container could not start."""
    status = task.get("Status") or {}
    return status.get("State") == "rejected" or "starting container failed" in (status.get("Err") or "")


def published_port(task: dict, target: int) -> int | None:
    for p in (task.get("Status") or {}).get("PortStatus", {}).get("Ports") or []:
        if p.get("TargetPort") == target and p.get("PublishedPort"):
            return int(p["PublishedPort"])
    return None


def service_log_tail(client: docker.DockerClient, service_id: str, n: int = 30) -> list[str]:
    try:
        raw = client.api.service_logs(service_id, stdout=True, stderr=True, tail=200)
        if not isinstance(raw, bytes):
            raw = b"".join(raw)
    except docker.errors.DockerException:
        return []
    lines = [ln for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-n:]


LOG_TASK = "com.docker.swarm.task.id"  # in the details of each line of a service's logs


def _shut(stream: CancellableStream) -> None:
    try:
        stream.close()
    except (docker.errors.DockerException, OSError):  # already closed, or gone
        pass


class ServiceLogSource:
    """A service as `logs` reads it (interface.LogSource)."""

    def __init__(self, swarm: Swarm, service: Service) -> None:
        self.swarm, self.service, self.id = swarm, service, service.id

    def lines(self, tail: int) -> list[tuple[str, str, str]]:
        return self.swarm.log_lines(self.service, tail)

    def follow(self, tail: int | str) -> ServiceLogs:
        return self.swarm.follow_logs(self.service, tail)


class ServiceLogs:
    """A service's log lines as (docker timestamp, dyno, text), from every node: the manager
    collects them, and each line's details name the task that wrote it (its slot: the dyno).

    Read frame by frame: docker sends one frame per log message, and a long line as several
    partial messages (16 KiB each, each with its own timestamp and details); a LineSplitter per
    task joins those and keeps at most MAX_LINE bytes of a line (an app may print gigabytes
    without a newline). With `follow` it goes on (through new tasks of the service too) until
    `close()`, from any thread: the SDK's `service_logs` is a bare generator that nothing can
    end while it waits on its socket, and a removed service's stream never ends on its own; this
    keeps the response, as the SDK's `containers.logs` does (CancellableStream)."""

    def __init__(self, swarm: Swarm, service: Service, tail: int | str, follow: bool) -> None:
        self.swarm = swarm
        self.service = service
        self.tail = tail
        self.follow = follow
        self._lock = threading.Lock()
        self._stream: CancellableStream | None = None
        self._closed = False
        self._slots: dict[str, int] = {}

    def _open(self) -> CancellableStream | None:
        api = self.swarm.client.api
        params = {
            "details": True,
            "follow": self.follow,
            "stdout": True,
            "stderr": True,
            "timestamps": True,
            "tail": self.tail,
        }
        # APIClient.service_logs, keeping the response (our services never have a TTY).
        response = api._get(api._url("/services/{0}/logs", self.service.id), params=params, stream=True)
        stream = CancellableStream(api._get_result_tty(True, response, False), response)
        with self._lock:
            if not self._closed:
                self._stream = stream
                return stream
        _shut(stream)  # closed while it was opening
        return None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stream, self._stream = self._stream, None
        if stream is not None:
            _shut(stream)

    def _dyno(self, task: str) -> str:
        slot = self._slots.get(task)
        if slot is None:  # a task that started since (a restart, a scale): read them again
            self._slots = {t["ID"]: t.get("Slot", 0) for t in _tasks(self.swarm.client, self.service.id)}
            slot = self._slots.setdefault(task, 0)
        return f"{self.swarm.type_of(self.service)}.{slot}"

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        partial: dict[str, tuple[LineSplitter, bytes]] = {}  # task -> its unfinished line
        try:
            stream = self._open()
            if stream is None:
                return
            for frame in stream:
                ts, _, rest = frame.partition(b" ")
                details, _, text = rest.partition(b" ")
                if not ts[:1].isdigit():  # docker's own words ("Error grabbing logs: ...")
                    continue
                attrs = dict(kv.partition(b"=")[::2] for kv in details.split(b","))
                task = attrs.get(LOG_TASK.encode(), b"").decode("ascii", "replace")
                splitter = partial.pop(task, (LineSplitter(), ts))[0]
                for line in splitter.feed(text):
                    yield ts.decode("ascii", "replace"), self._dyno(task), _text(line)
                if splitter.pending:
                    partial[task] = (splitter, ts)
            for task, (splitter, ts) in partial.items():
                for line in splitter.close():
                    yield ts.decode("ascii", "replace"), self._dyno(task), _text(line)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return  # the service is gone, or dockerd is
        finally:
            self.close()


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").removesuffix("\r")


class TaskProbe:
    """One slot of a new service as the checks see it: its task's host-mode port on its node."""

    def __init__(self, swarm: Swarm, service_id: str, ptype: str, slot: int, port: int) -> None:
        self.swarm = swarm
        self.service_id = service_id
        self.type = ptype
        self.index = slot
        self.port = port
        self.tasks: list[dict] = []

    @property
    def dyno(self) -> str:
        return f"{self.type}.{self.index}"

    def refresh(self) -> None:
        self.tasks = _tasks(self.swarm.client, self.service_id)

    def _task(self) -> dict | None:
        return _current(self.tasks, self.index)

    def endpoint(self) -> tuple[str, int] | None:
        task = self._task()
        if task is None or (task.get("Status") or {}).get("State") != "running":
            return None
        port = published_port(task, self.port)
        addr = self.swarm.nodes().get(task.get("NodeID", ""), NO_NODE).addr
        return (addr, port) if addr and port else None

    def crashed(self) -> str | None:
        ended = [
            t
            for t in self.tasks
            if t.get("Slot") == self.index and (t.get("Status") or {}).get("State") in CRASHES
        ]
        # A node that cannot run it (cannot pull, lacks a mount, the host port it was given is
        # taken) rejects the task or fails to start it, and swarm tries again, elsewhere or with
        # another port: only a slot refused again and again has nowhere to run.
        # A host port taken by something docker's allocator does not see: the next try gets the
        # next port, so those only end the deploy through the boot timeout.
        ended = [
            t for t in ended if "address already in use" not in ((t.get("Status") or {}).get("Err") or "")
        ]
        rejected = [t for t in ended if _refused(t)]
        if not ended or (len(rejected) == len(ended) and len(rejected) < REJECTIONS):
            return None
        status = ended[-1].get("Status") or {}
        why = status.get("Err") or status.get("Message") or status.get("State")
        exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
        if exit_code:
            err = status.get("Err") or ""  # docker's reason when the container could not even start
            why = f"exited with status {exit_code}" + (
                f" ({err})" if err and "non-zero exit" not in err else ""
            )
        return f"{self.dyno} {why}" + (f" ({len(ended)} time(s))" if len(ended) > 1 else "")

    def log_tail(self) -> list[str]:
        return service_log_tail(self.swarm.client, self.service_id)

    def started_at(self) -> datetime | None:
        task = self._task()
        if task is None or (task.get("Status") or {}).get("State") != "running":
            return None
        return parse_time((task.get("Status") or {}).get("Timestamp"))

    def preparing(self) -> bool:
        task = self._task()
        return task is None or (task.get("Status") or {}).get("State") in PREPARING


class Swarm:
    """The `swarm` scheduler, driven from a manager node (this host)."""

    name = names.SCHEDULER_SWARM
    network_driver = "overlay"

    def __init__(
        self,
        client: docker.DockerClient,
        instance: str,
        publish: Callable[[str], str] = lambda image: image,
        stop_grace: int = 30,
        constraints: tuple[str, ...] = (),
        ready: Callable[[], object] = lambda: None,
    ) -> None:
        self.client = client
        self.instance = instance
        self.stop_grace = stop_grace  # seconds between SIGTERM and SIGKILL, fixed per service
        self.constraints = constraints  # PAAS_SWARM_CONSTRAINTS: which nodes run apps
        self.publish = publish  # the image reference every node can pull (registry.py)
        self.ready = ready  # makes this host a manager (nodes.ensure_swarm)
        self._nodes: dict[str, Node] | None = None

    def prepare(self) -> None:
        """This host a swarm manager: the swarm is initialised on first ask."""
        self.ready()

    def nodes(self) -> dict[str, Node]:
        if self._nodes is None:
            self._nodes = node_addresses(self.client)
        return self._nodes

    def forget_nodes(self) -> None:
        self._nodes = None

    def this_node(self) -> str:
        """The name of this host's node, as `rows` names nodes ("" outside a swarm)."""
        node_id = (self.client.info().get("Swarm") or {}).get("NodeID") or ""
        return self.nodes().get(node_id, NO_NODE).hostname if node_id else ""

    def require_manager(self) -> None:
        if not is_manager(self.client):
            raise PaasError("this host is not a swarm manager: run `nodes:list` to initialise the swarm")

    # the Scheduler protocol
    def processes(self, app: str) -> list[Service]:
        if not is_manager(self.client):
            return []
        labels = names.label_filter(self.instance, app, names.ROLE_PROCESS)
        return self.client.services.list(filters={"label": labels})

    def release_of(self, handle: Service) -> int:
        value = _labels(handle).get(LABEL_RELEASE, "")
        return int(value) if value.isdigit() else 0

    def type_of(self, handle: Service) -> str:
        return _labels(handle).get(LABEL_TYPE, "")

    def replicas(self, handle: Service) -> int:
        return int(((handle.attrs["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0))

    def port_of(self, handle: Service) -> int:
        value = _labels(handle).get(LABEL_PORT, "")
        return int(value) if value.isdigit() else APP_PORT

    def start(self, specs: Sequence[ProcessSpec]) -> list[Service]:
        images = {spec.image: self.publish(spec.image) for spec in specs}  # may initialise the swarm
        self.require_manager()
        by_type: dict[str, list[ProcessSpec]] = {}
        for spec in specs:
            by_type.setdefault(spec.process_type, []).append(spec)
        started: list[Service] = []
        try:
            for ptype in sorted(by_type):
                first = by_type[ptype][0]
                started.append(self._create(first, images[first.image], len(by_type[ptype])))
        except BaseException:
            self.stop(started, timeout=1)
            raise
        return started

    def _create(self, spec: ProcessSpec, image: str, replicas: int) -> Service:
        settings = spec.settings
        ptype = spec.process_type
        limits = settings.limits_for(ptype)
        dyno = f"{ptype}.{{{{.Task.Slot}}}}"  # a swarm template: web.1, web.2, ...
        env = {**settings.env, "DYNO": dyno, "PS": dyno}
        ports = []
        if ptype == "web":
            env["PORT"] = str(spec.port)
            ports = [{"Protocol": "tcp", "TargetPort": spec.port, "PublishMode": "host"}]
        labels = {
            **settings.labels,
            **names.app_labels(
                spec.instance,
                spec.app,
                names.ROLE_PROCESS,
                **{LABEL_RELEASE: str(spec.release), LABEL_TYPE: ptype, LABEL_PORT: str(spec.port)},
            ),
        }
        mounts = []
        for b in settings.binds:
            if str(b.source) in {str(p) for p in FORBIDDEN_SOURCES}:
                raise PaasError(f"refusing to mount {b.source} into an app container")
            mounts.append(Mount(b.target, str(b.source), type="bind", read_only=b.read_only))
        resources = Resources(
            cpu_limit=int(limits.cpus * 1e9) if limits.cpus else None,
            mem_limit=parse_bytes(limits.memory) if limits.memory else None,
        )
        if limits.pids:
            resources.setdefault("Limits", {})["Pids"] = limits.pids
        if not settings.networks:
            raise PaasError(f"{spec.app} has no network for swarm services")
        network = settings.networks[0]
        return self.client.services.create(
            image,
            args=[ptype],  # the image's entrypoint runs the process type, as on docker-local
            name=names.swarm_service(spec.instance, spec.app, ptype, spec.release, uuid.uuid4().hex[:6]),
            env=[f"{k}={v}" for k, v in env.items()],
            labels=labels,
            container_labels=labels,
            user=run_user(self.client, spec.image),
            init=True,
            cap_drop=["ALL"],
            cap_add=list(settings.cap_add) or None,
            mounts=mounts,
            resources=resources,
            mode=ServiceMode("replicated", replicas=replicas),
            restart_policy=RestartPolicy(condition="any", delay=1_000_000_000),
            stop_grace_period=self.stop_grace * 1_000_000_000,
            log_driver="json-file",
            log_driver_options=dict(LOG_OPTIONS),
            networks=[NetworkAttachmentConfig(network, aliases=[ptype])],
            endpoint_spec=EndpointSpec(mode="dnsrr", ports=ports),
            # A host path exists on the manager only: such processes stay there.
            constraints=[*self.constraints, *(["node.role==manager"] if mounts else [])] or None,
        )

    def probes(self, started: Iterable[Service]) -> list[TaskProbe]:
        self.forget_nodes()
        out = []
        for svc in started:
            for slot in range(1, self.replicas(svc) + 1):
                out.append(TaskProbe(self, svc.id, self.type_of(svc), slot, self.port_of(svc)))
        return out

    def upstreams(self, handles: Iterable[Service]) -> list[str]:
        """Every running web task, at its node's address and its host-mode port."""
        self.forget_nodes()
        out = set()
        for svc in handles:
            if self.type_of(svc) != "web":
                continue
            port = self.port_of(svc)
            for task in _tasks(self.client, svc.id):
                if (
                    task.get("DesiredState") != "running"
                    or (task.get("Status") or {}).get("State") != "running"
                ):
                    continue
                node = self.nodes().get(task.get("NodeID", ""), NO_NODE)
                published = published_port(task, port)
                if node.ready and node.addr and published:  # a lost node's tasks still say running
                    out.add(f"{node.addr}:{published}")
        return sorted(out)

    def stop(self, handles: Iterable[Service], timeout: int, wait: bool = True) -> None:
        """Remove the services; swarm stops their tasks (SIGTERM, the grace period, SIGKILL).
        With `wait`, returns once they are gone (or past the grace period): the app's network
        can go then. A deploy does not wait: swarm takes ~4 s to retire tasks, which the route
        no longer reaches."""
        tasks: list[str] = []
        self.forget_nodes()
        for svc in handles:
            tasks += [t["ID"] for t in _tasks(self.client, svc.id) if t.get("DesiredState") == "running"]
            try:
                svc.remove()
            except docker.errors.NotFound:
                continue
        deadline = time.monotonic() + max(timeout, self.stop_grace) + 10
        while wait and tasks and time.monotonic() < deadline:
            tasks = [t for t in tasks if self._task_alive(t)]
            if tasks:
                time.sleep(0.2)

    def _task_alive(self, task_id: str) -> bool:
        try:
            task = self.client.api.inspect_task(task_id)
        except docker.errors.NotFound:
            return False
        if not self.nodes().get(task.get("NodeID", ""), NO_NODE).ready:  # a lost node's: nothing to wait for
            return False
        return (task.get("Status") or {}).get("State") in ("running", *BOOTING)

    def log_lines(self, handle: Service, tail: int) -> list[tuple[str, str, str]]:
        """(docker timestamp, dyno, text) of the service's last lines, from every node."""
        return list(ServiceLogs(self, handle, tail, follow=False))

    def follow_logs(self, handle: Service, tail: int | str = 0) -> ServiceLogs:
        """The service's lines as they come (after its last `tail`, "all" for every one), from
        every node, until its `close()`: iterate it on a thread of its own."""
        return ServiceLogs(self, handle, tail, follow=True)

    def converge(self, app: str, want: Desired | None) -> Converged:
        """Swarm keeps each service's replicas itself (a lost node's tasks start elsewhere; a node
        that comes back has its old tasks shut down). Here: one service per process type of the
        release at the formation's scale, the rest removed; crash loops read from the slots' ended
        tasks. New tasks join the route once running (`upstreams`), wherever they are."""
        services = self.processes(app)
        done = Converged(troubles=self._troubles(app, services))
        if want is None:
            if services:
                self.stop(services, timeout=5, wait=False)
                done.actions.append(f"removed {len(services)} service(s) of a stopped or undeployed app")
            return done
        desired = {t: n for t, n in want.formation.items() if n > 0}
        keep: dict[str, Service] = {}
        remove = []
        for svc in sorted(services, key=lambda s: s.attrs.get("CreatedAt", ""), reverse=True):
            ptype = self.type_of(svc)
            if self.release_of(svc) != want.release or ptype not in desired or ptype in keep:
                remove.append(svc)
            else:
                keep[ptype] = svc
        if remove:
            self.stop(remove, timeout=5, wait=False)
            done.actions.append(f"removed {len(remove)} stray service(s)")
        for ptype, svc in keep.items():
            if self.replicas(svc) != desired[ptype]:
                self.scale(svc, desired[ptype])
                done.actions.append(f"scaled {ptype} to {desired[ptype]}")
        missing = sorted(set(desired) - set(keep))
        if missing:
            self.start([want.spec(t, i) for t in missing for i in range(1, desired[t] + 1)])
            done.actions.append("started " + ", ".join(missing))
        done.current = self.processes(app)
        return done

    def _troubles(self, app: str, services: list[Service]) -> list[Trouble]:
        found = {}
        for svc in services:
            ended = []
            for t in _tasks(self.client, svc.id):
                status = t.get("Status") or {}
                when = parse_time(status.get("Timestamp"))
                if status.get("State") in ("failed", "complete") and when is not None:
                    ended.append((int(t.get("Slot") or 0), when))
            ptype = self.type_of(svc)
            found[svc.id] = ({slot: f"{ptype}.{slot}" for slot in range(1, self.replicas(svc) + 1)}, ended)
        return trouble.slots(app, found, datetime.now(UTC))

    def log_sources(self, app: str, process_type: str | None) -> list[LogSource]:
        """One per service: its tasks run on any node, and the manager reads them all."""
        return [
            ServiceLogSource(self, svc)
            for svc in self.processes(app)
            if process_type is None or self.type_of(svc) == process_type
        ]

    def elsewhere(self, app: str) -> list[ProcessRow]:
        this = self.this_node()
        return [r for r in self.rows(app) if r.state == "running" and r.node and r.node != this]

    def scale(self, handle: Service, replicas: int) -> None:
        handle.scale(replicas)

    def rows(self, app: str) -> list[ProcessRow]:
        self.forget_nodes()
        return [row for svc in self.processes(app) for row in self.rows_for(svc)]

    def rows_for(self, svc: Service) -> list[ProcessRow]:
        """One row per slot: the task swarm wants running there, and the node it is on."""
        out = []
        tasks = _tasks(self.client, svc.id)
        for slot in range(1, self.replicas(svc) + 1):
            task = _current(tasks, slot)
            if task is None:
                continue
            status = task.get("Status") or {}
            state = status.get("State", "unknown")
            out.append(
                ProcessRow(
                    type=self.type_of(svc),
                    index=slot,
                    state=state,
                    release=self.release_of(svc),
                    started_at=parse_time(status.get("Timestamp")) if state == "running" else None,
                    restarts=sum(1 for t in tasks if t.get("Slot") == slot and t is not task),
                    id=task["ID"][:12],
                    node=self.nodes().get(task.get("NodeID", ""), NO_NODE).hostname,
                )
            )
        return out
