"""Containers of ours on this host's engine, whatever schedules the app's processes.

Every app container gets the same Engine API arguments (`engine_kwargs`: the release's settings,
our labels, the hardening), is found by its labels (`containers_of`, `app_containers`: from a
reconcile pass's one survey when one is on) and stopped the same way (`stop_and_remove`). The
docker-local scheduler starts its processes with these; one-offs (`run`), the release phase,
cron runs and leftovers of builds run here on either scheduler (a swarm app's one-off runs on
the manager, as `run` says), so the service layer uses this module and never a scheduler's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import docker
import requests
from docker.models.containers import Container
from docker.types import Mount

from paas.core import names
from paas.core.container import ContainerSettings, log_config
from paas.core.names import APP_UID
from paas.errors import PaasError

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
        self._by_app: dict[str, list[dict]] | None = None  # app -> its listed summaries, every role

    def _list(self) -> dict[tuple[str, str], list[dict]]:
        if self._summaries is None:
            self._touched = _events_since_last(self.client, self.instance)
            self.listed_at, found = _listing(self.client, self.instance, self._touched)
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

    def fingerprint(self, app: str) -> tuple | None:
        """The app's containers of every role as this survey listed them: equal in two passes
        only when nothing happened to them in between (the same ids in the same states, none
        with an event, none started or stopped under a minute ago); None when that cannot be told
        (the engine's events were not read)."""
        summaries = self._list()
        if self._touched is None:
            return None
        if self._by_app is None:
            self._by_app = {}
            for (owner, _), found in summaries.items():
                self._by_app.setdefault(owner, []).extend(found)
        rows = []
        for summary in self._by_app.get(app, []):
            if summary["Id"] in self._touched or "second" in str(summary.get("Status", "")):
                return None
            rows.append((summary["Id"], str(summary.get("State", ""))))
        return tuple(sorted(rows))

    def containers(self, app: str, role: str) -> list[Container]:
        self._relist_if_changed(app)
        out = []
        for summary in self._list().get((app, role), []):
            container = _details(self.client, self.instance, summary, self._touched)
            if container is not None:
                self.fresh.add(container.id)
                out.append(container)
        return out


_survey: ContextVar[Survey | None] = ContextVar("paas_host_containers_survey", default=None)
_kept_lock = threading.Lock()
# (engine, instance) -> container id -> (its state when inspected, the inspected container)
_kept: dict[tuple[str, str], dict[str, tuple[str, Container]]] = {}
_last_survey: dict[tuple[str, str], float] = {}  # (engine, instance) -> when its events were read
# What happens to a container: a survey inspects it again; and a listing is made again.
EVENTS = [
    *("start", "die", "oom", "restart", "kill", "stop", "pause", "unpause", "health_status"),
    *("create", "destroy", "rename", "update"),
]
# A listing is used again by the next surveys, up to this long, while the engine's events say
# that nothing happened to any container of the instance and none of them is young (its Status,
# "Up 5 seconds", is what tells the pass it may still be starting). With 200 containers the
# listing was 227 KB of JSON to decode every pass: 40% of an idle pass's CPU.
LISTING_KEPT_SECONDS = 30.0
_listings: dict[tuple[str, str], tuple[float, list[dict]]] = {}  # (engine, instance) -> when, summaries


def _listing(
    client: docker.DockerClient, instance: str, touched: set[str] | None
) -> tuple[float, list[dict]]:
    """The instance's containers (summaries) and when they were listed: the last listing when
    nothing happened since (see LISTING_KEPT_SECONDS), else a new one."""
    key = (client.api.base_url, instance)
    with _kept_lock:
        kept = _listings.get(key)
    if (
        kept is not None
        and touched is not None
        and not touched
        and time.time() - kept[0] < LISTING_KEPT_SECONDS
        and not any("second" in str(s.get("Status", "")) for s in kept[1])
    ):
        return kept
    listed_at = time.time()
    found = client.api.containers(all=True, filters={"label": names.label_filter(instance)})
    with _kept_lock:
        _listings[key] = (listed_at, found)
    return listed_at, found


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
    return client.containers.list(
        all=True, ignore_removed=True, filters={"label": names.label_filter(instance, app, role)}
    )


def app_containers(
    client: docker.DockerClient, instance: str, app: str, all_states: bool = True
) -> list[Container]:
    if all_states:
        found = containers_of(client, instance, app, names.ROLE_PROCESS)
    else:
        labels = names.label_filter(instance, app, names.ROLE_PROCESS)
        found = client.containers.list(ignore_removed=True, filters={"label": labels})
    return [c for c in found if names.LABEL_SWARM_SERVICE not in c.labels]  # the swarm's own tasks


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


def current_survey() -> Survey | None:
    """The survey of the reconcile pass this thread is in, if any."""
    return _survey.get()
