"""What each app adds to the disk, measured by `paas server` every PAAS_DISK_CHECK_SECONDS, and
the stop of an app whose owner is past their disk quota.

An app's parts: its git repo, its build cache volume, its images above the stack (the stack is
shared: counted for nobody, once per layer even when several of the app's images share it),
the writable layers of its containers (processes, one-offs, cron, builds), their docker logs,
and the storage folders mounted into them. Sizes are allocated blocks, hard links once: what
fills the disk. When a user's apps pass the quota, their running apps that write the most
(containers and logs: what stopping them frees) are stopped one by one until the rest fits,
each with a `quota:disk` event; their other apps keep serving, and pushes are refused
(`quotas.require_disk`) until they are back under it. A check is a poll: an app writing fast
can pass its quota by what it writes in one interval before it is stopped.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from paas.buildpacks.stack import STACK_REPOSITORY
from paas.core import names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.scheduler import host_containers as sched
from paas.services import disk, processes, quotas
from paas.store import App

log = logging.getLogger("paas.disk")
PARTS = ("repo", "cache", "images", "containers", "logs", "storage")
RUNTIME = ("containers", "logs")  # what stopping an app frees at once
MIN_FREED = 1 << 20  # an app that would free less than this is not stopped for the quota
STACK_IMPORTED = "Imported from"  # the history comment of a stack's layer (`docker import`)


def allocated(path: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes of disk under `path` (allocated blocks; symlinks not followed, hard links once)."""
    seen = set() if seen is None else seen
    total = 0
    stack = [str(path)]
    while stack:
        top = stack.pop()
        try:
            info = os.lstat(top)
        except OSError:
            continue  # gone meanwhile (a container removed, a file deleted)
        if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
            key = (info.st_dev, info.st_ino)
            if key in seen:
                continue
            seen.add(key)
        total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            try:
                with os.scandir(top) as entries:
                    stack.extend(e.path for e in entries)
            except OSError:
                continue
    return total


@dataclass(frozen=True)
class Box:
    """One container as a pass needs it."""

    id: str
    upper: str | None  # its writable layer on the host (overlay2), if known
    log_path: str
    binds: tuple[str, ...]  # host folders mounted into it


@dataclass
class Engine:
    """What one pass reads from dockerd, once for every app: two listings, plus an inspect of
    each container and the history of each image not seen before (neither ever changes)."""

    containers: dict[str, list[Box]]  # app name -> its containers (every role)
    images: dict[str, list[str]]  # image repository -> ids of this instance's images in it
    stack_ids: set[str]
    volumes: dict[str, str]  # this instance's cache volumes -> where they are on the host


# What never changes for a container or an image id: kept between passes (for those that remain).
_boxes: dict[str, tuple[str | None, str]] = {}
_histories: dict[str, list[dict]] = {}


def _engine(ctx: Context) -> Engine:
    api = ctx.docker.api
    suffix = f"-{ctx.settings.instance_id}"
    by_app: dict[str, list[Box]] = {}
    seen_boxes = set()
    for row in api.containers(all=True, filters={"label": names.label_filter(ctx.settings.instance_id)}):
        app = (row.get("Labels") or {}).get(names.LABEL_APP)
        if not app:
            continue
        cid = row["Id"]
        if cid not in _boxes:
            try:
                attrs = api.inspect_container(cid)
            except docker.errors.NotFound:  # builds and one-offs come and go
                continue
            upper = ((attrs.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
            _boxes[cid] = (upper, attrs.get("LogPath") or "")
        seen_boxes.add(cid)
        upper, log_path = _boxes[cid]
        binds = tuple(m.get("Source", "") for m in row.get("Mounts") or [] if m.get("Type") == "bind")
        by_app.setdefault(app, []).append(Box(cid, upper, log_path, binds))
    images: dict[str, list[str]] = {}
    stack_ids: set[str] = set()
    for row in api.images(filters={"reference": ["paas/app-*", f"{STACK_REPOSITORY}:*"]}):
        for tag in row.get("RepoTags") or []:
            repository = tag.rpartition(":")[0]
            if repository == STACK_REPOSITORY:
                stack_ids.add(row["Id"])
            elif tag.endswith(suffix):
                images.setdefault(repository, []).append(row["Id"])
    for gone in set(_boxes) - seen_boxes:
        del _boxes[gone]
    kept = {i for ids in images.values() for i in ids}
    for gone in set(_histories) - kept:
        del _histories[gone]
    prefix = names.cache_volume(ctx.settings.instance_id, "")
    volumes = {
        v["Name"]: v.get("Mountpoint") or ""
        for v in api.volumes(filters={"name": prefix}).get("Volumes") or []
        if v["Name"].startswith(prefix)
    }
    return Engine(by_app, images, stack_ids, volumes)


def _writable_layer(ctx: Context, box: Box) -> int:
    if box.upper:
        return allocated(Path(box.upper))
    try:  # another storage driver: ask dockerd (slower: it walks the layer itself)
        return int(ctx.docker.api.inspect_container(box.id, size=True).get("SizeRw") or 0)
    except docker.errors.DockerException:
        return 0


def _log_files(box: Box) -> int:
    total = 0
    if box.log_path:
        for candidate in (box.log_path, *(f"{box.log_path}.{n}" for n in range(1, 10))):
            try:
                total += os.stat(candidate).st_blocks * 512
            except OSError:
                continue
    return total


def _history(ctx: Context, image_id: str) -> list[dict]:
    if image_id not in _histories:
        _histories[image_id] = ctx.docker.api.history(image_id)
    return _histories[image_id]


def _images(ctx: Context, app: App, engine: Engine) -> int:
    """The layers of the app's images above the stack, each layer once."""
    seen: set[object] = set()
    total = 0
    for image_id in dict.fromkeys(engine.images.get(names.image_repository(app.name), [])):
        try:
            history = _history(ctx, image_id)
        except docker.errors.DockerException:  # removed meanwhile (image GC after a deploy)
            continue
        for entry in history:  # newest first, down to the stack
            if entry.get("Id") in engine.stack_ids or (entry.get("Comment") or "").startswith(STACK_IMPORTED):
                break  # the stack (an older one, untagged since, is found by how it was made)
            key = (
                entry["Id"]
                if entry.get("Id") not in (None, "", "<missing>")
                else (entry.get("Created"), entry.get("CreatedBy"), entry.get("Size"))
            )
            if key in seen:
                continue
            seen.add(key)
            total += int(entry.get("Size") or 0)
    return total


def _cache(ctx: Context, app: App, engine: Engine) -> int:
    mountpoint = engine.volumes.get(names.cache_volume(ctx.settings.instance_id, app.name))
    return allocated(Path(mountpoint)) if mountpoint else 0


def _storage(ctx: Context, boxes: list[Box]) -> int:
    """Storage folders (under the data dir's storage/) bind-mounted into the app's containers."""
    root = str(ctx.settings.storage_dir.resolve())
    sources = {src for b in boxes for src in b.binds if (src + "/").startswith(root + "/")}
    seen: set[tuple[int, int]] = set()
    return sum(allocated(Path(src), seen) for src in sorted(sources))


def measure_app(ctx: Context, app: App, engine: Engine) -> dict[str, int]:
    boxes = engine.containers.get(app.name, [])
    return {
        "repo": allocated(names.repo_path(ctx.settings, app.name)),
        "cache": _cache(ctx, app, engine),
        "images": _images(ctx, app, engine),
        "containers": sum(_writable_layer(ctx, b) for b in boxes),
        "logs": sum(_log_files(b) for b in boxes),
        "storage": _storage(ctx, boxes),
    }


def measure(ctx: Context) -> dict[int, dict[str, int]]:
    """Every app's parts, kept in the store (what quota:report and pushes read)."""
    engine = _engine(ctx)
    out: dict[int, dict[str, int]] = {}
    for app in ctx.store.list_apps():
        try:
            parts = measure_app(ctx, app, engine)
        except (PaasError, docker.errors.DockerException, OSError) as exc:
            log.warning("measuring the disk of %s: %s", app.name, exc)
            continue
        out[app.id] = parts
    ctx.store.set_disk_usages(out, time.time())
    return out


def enforce(ctx: Context, measured: dict[int, dict[str, int]]) -> list[str]:
    """Stop, for each user past their disk quota, the running apps that write the most until the
    rest fits; their other apps keep running. Apps owned by admins are not stopped."""
    stopped: list[str] = []
    apps = {a.id: a for a in ctx.store.list_apps()}
    owners = {a.owner_id for a in apps.values() if a.owner_id is not None}
    for owner_id in sorted(owners):  # type: ignore[type-var]
        user = ctx.store.get_user_by_id(owner_id)  # type: ignore[arg-type]
        if user is None or user.is_admin:
            continue
        quota = quotas.of_user(ctx, user.id)["disk"]
        mine = [a for a in apps.values() if a.owner_id == user.id and a.id in measured]
        used = sum(sum(measured[a.id].values()) for a in mine)
        writers = sorted(
            (a for a in mine if not a.stopped and sum(measured[a.id][p] for p in RUNTIME) >= MIN_FREED),
            key=lambda a: -sum(measured[a.id][p] for p in RUNTIME),
        )
        for app in writers:
            if used <= quota:
                break
            freed = sum(measured[app.id][p] for p in RUNTIME)
            written = f"{quotas.size_text(freed)} written by {app.name}'s containers"
            why = (
                f"stopped: the disk quota of {user.name} ({quotas.size_text(quota)}) is exceeded:"
                f" {quotas.size_text(used)} used, {written}"
            )
            if _stop(ctx, app, why):
                used -= freed
                stopped.append(app.name)
                ctx.store.set_disk_usage(
                    app.id, {**measured[app.id], **dict.fromkeys(RUNTIME, 0)}, time.time()
                )
    return stopped


def keep_reserve(ctx: Context, measured: dict[int, dict[str, int]]) -> list[str]:
    """Whatever the quotas, the last PAAS_DISK_RESERVE of the data dir's and docker's disks is
    the platform's (store, keys, certificates): below it, the running apps that write the most
    (any owner but admins) are stopped until what they free brings it back."""
    reserve = ctx.settings.disk_reserve
    free = min((s.free for s in disk.spaces(ctx)), default=reserve)
    if free >= reserve:
        return []
    apps = ctx.store.list_apps()
    admins = {u.id for u in ctx.store.list_users() if u.is_admin}
    writers = sorted(
        (
            a
            for a in apps
            if a.id in measured
            and not a.stopped
            and a.owner_id not in admins
            and sum(measured[a.id][p] for p in RUNTIME) >= MIN_FREED
        ),
        key=lambda a: -sum(measured[a.id][p] for p in RUNTIME),
    )
    stopped = []
    for app in writers:
        if free >= reserve:
            break
        freed = sum(measured[app.id][p] for p in RUNTIME)
        why = (
            f"stopped: the disk is nearly full ({quotas.size_text(free)} free, PAAS_DISK_RESERVE is"
            f" {quotas.size_text(reserve)}): {quotas.size_text(freed)} written by {app.name}'s containers"
        )
        if _stop(ctx, app, why):
            free += freed
            stopped.append(app.name)
    return stopped


# Containers that hold no deploy lock or are the deploy's own: removed at once (a build or a
# release phase that writes fails its push; a one-off or a cron run ends).
UNLOCKED_ROLES = (names.ROLE_RUN, names.ROLE_CRON, names.ROLE_BUILD, names.ROLE_ONEOFF)


def _stop(ctx: Context, app: App, why: str) -> bool:
    """The app's one-offs, cron runs, builds and release phase go at once; then its processes
    (`ps:stop`, which waits for a running deploy of the app to end: it fails without its build)."""
    ctx.store.add_event(app.name, "paas", "quota:disk", why)
    log.warning("%s: %s", app.name, why)
    for role in UNLOCKED_ROLES:
        labels = names.label_filter(ctx.settings.instance_id, app.name, role)
        sched.stop_and_remove(
            ctx.docker.containers.list(all=True, ignore_removed=True, filters={"label": labels}), timeout=1
        )
    try:
        processes.stop(ctx.for_actor("paas", True), app.name, BuildLog())
    except PaasError as exc:  # the next pass tries again
        log.warning("stopping %s for its disk quota: %s", app.name, exc)
        return False
    return True


def check(ctx: Context) -> list[str]:
    """One pass: measure every app, then stop what passes its owner's quota, then what eats
    into the platform's reserve."""
    measured = measure(ctx)
    stopped = enforce(ctx, measured)
    fresh = ctx.store.disk_usage(list(measured))  # with what the stops freed
    return stopped + keep_reserve(ctx, {i: fresh.get(i, p) for i, p in measured.items()})
