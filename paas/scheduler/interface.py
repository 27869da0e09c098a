"""The seam between the service layer and what runs processes: docker-local, or a plugin's (swarm).

The service layer decides (which release, which checks, when traffic moves, when old processes
go); a scheduler only does: start a release's processes, say where each one answers, list what
runs, stop. Both schedulers satisfy `Scheduler`; `paas.services.schedulers.for_app` picks one
per app. The core has docker-local; every other one comes from a plugin's `paas_schedulers`
hook (the built-in plugins/swarm is one), and the core never names it.

A "handle" is whatever a scheduler starts and stops as one unit (a container for docker-local,
a service for swarm); the service layer only passes handles back to the scheduler that made them.

What runs on this host whatever the app's scheduler (one-offs, the release phase, cron runs, a
build's leftovers) is not a scheduler's: `paas.scheduler.host_containers` starts, finds and stops
those, and the service layer imports neither scheduler (tests/unit/test_layers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from paas.core.container import ContainerSettings
from paas.core.names import APP_PORT
from paas.errors import PaasError

Handle = Any  # opaque to the service layer


class ProcessFailed(PaasError):
    """A new process did not come up; carries its last log lines."""

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


@dataclass(frozen=True)
class ProcessRow:
    """One process as `ps` shows it, whatever runs it."""

    type: str
    index: int
    state: str  # running, restarting, exited, oom-killed, starting, failed, ...
    release: int
    started_at: datetime | None
    restarts: int
    id: str  # container or task id (short)
    node: str  # the host it runs on ("" when it has not been placed)


@runtime_checkable
class Probe(Protocol):
    """One new process as the health checks see it (paas.scheduler.health)."""

    type: str
    index: int
    port: int  # $PORT inside the process

    @property
    def dyno(self) -> str: ...

    def refresh(self) -> None:
        """Read its state again (checks poll)."""

    def endpoint(self) -> tuple[str, int] | None:
        """Where a check reaches $PORT (an address this host can connect to), None until known."""

    def crashed(self) -> str | None:
        """Why it is no longer a healthy first run, or None."""

    def log_tail(self) -> list[str]: ...

    def started_at(self) -> datetime | None: ...

    def preparing(self) -> bool:
        """Whether the scheduler is still getting the process ready to start (placing it, pulling
        its image onto a node): that time never counts against the boot timeout."""


@dataclass(frozen=True)
class Desired:
    """What should run for an app: one release's processes at the formation's scale."""

    release: int
    formation: dict[str, int]  # process type -> count (types the build has; 0: none)
    spec: Callable[[str, int], ProcessSpec]  # the spec of (type, index): made at need (it costs)


@dataclass(frozen=True)
class Trouble:
    """A process in trouble, seen by a converge pass: news once per occurrence."""

    dyno: str
    kind: str  # "oom-killed" or "crash-loop"
    detail: str  # the event's text
    action: str  # the reconcile log's line


@dataclass
class Converged:
    """What a converge pass did and found."""

    actions: list[str] = field(default_factory=list)
    started: list[Handle] = field(default_factory=list)  # new web processes answer before the route
    current: list[Handle] = field(default_factory=list)  # the release's processes the route may reach
    troubles: list[Trouble] = field(default_factory=list)


LogLine = tuple[str, str, str]  # (docker timestamp, dyno, text)


class LogStream(Protocol):
    """Lines as they come, until `close()` (from any thread: the reader waits on a socket)."""

    def __iter__(self) -> Iterator[LogLine]: ...

    def close(self) -> None: ...


class LogSource(Protocol):
    """Where the lines of processes this engine does not hold come from (a swarm service's, from
    every node): `logs` reads this host's containers itself, and these through the scheduler."""

    id: str  # stable while the source lives: `logs -t` follows each one once

    def lines(self, tail: int) -> list[LogLine]:
        """The last `tail` lines."""

    def follow(self, tail: int | str) -> LogStream:
        """The lines after the last `tail` ("all": every one) as they come."""


@runtime_checkable
class Scheduler(Protocol):
    name: str
    # The driver of each app's own network: "bridge" (this host) or "overlay" (attachable: it
    # spans the nodes, and the app's one-offs and linked services on this host join it too).
    network_driver: str

    def prepare(self) -> None:
        """Make this host ready to run apps (swarm: a manager); before an app moves onto it.
        Raises PaasError saying what is missing."""

    def processes(self, app: str) -> list[Handle]:
        """Every handle of the app's processes, in any state."""

    def release_of(self, handle: Handle) -> int: ...

    def type_of(self, handle: Handle) -> str: ...

    def start(self, specs: Sequence[ProcessSpec]) -> list[Handle]:
        """Start these processes of one release (the specs of a type share everything but index)."""

    def probes(self, started: Sequence[Handle]) -> list[Probe]:
        """What the checks probe for `started`: one per process."""

    def upstreams(self, handles: Sequence[Handle]) -> list[str]:
        """`host:port` of every running web process among `handles`, for the router."""

    def stop(self, handles: Sequence[Handle], timeout: int, wait: bool = True) -> None:
        """SIGTERM, `timeout` seconds, SIGKILL, gone. `wait=False` may return before they are
        gone (a deploy's old processes, which the route no longer reaches)."""

    def rows(self, app: str) -> list[ProcessRow]:
        """What `ps` shows."""

    def converge(self, app: str, want: Desired | None) -> Converged:
        """Make what runs match `want` (None: nothing runs, a stopped or undeployed app): start
        what is missing, remove what is extra or of another release, and report crash loops and
        OOM kills seen on the way. The reconcile pass calls it every few seconds, outside deploys."""

    def log_sources(self, app: str, process_type: str | None) -> list[LogSource]:
        """The app's processes (of `process_type`, or all) whose lines are not in a container of
        this host's engine: [] when every process is one (docker-local)."""

    # Optional, for a reconcile pass over many apps (services.schedulers looks them up):
    # `survey(changed)`, a context in which listings come from one listing of everything, and
    # `fingerprint(app)`, what that listing showed of the app's processes, equal in two passes
    # only when nothing happened to them (None: cannot tell), so a pass may pass over the app.

    def elsewhere(self, app: str) -> list[ProcessRow]:
        """The app's running processes on another host than this one (`enter` cannot reach
        them): [] for a scheduler that runs everything here."""
