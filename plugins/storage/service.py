"""Persistent storage rules: which host directories exist, which may be mounted where, and each
app's mounts (Dokku's storage plugin).

A mount binds a directory made by `storage:ensure-directory` (one directly in the storage dir)
into every container of the app. Only directories directly in the storage dir may be mounted:
that dir is root's, so what a name points to cannot be changed from inside an app, whereas a
folder deeper down could be swapped for a symlink to anywhere by the app that writes there.

A folder belongs to the user who made it, or to the app it was made for (`--app`, by one who may
manage the app): only its owner (or one who may manage that app, into that app) and admins mount
it; to anyone else it does not exist. A folder made before owners were kept is the admins'.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from paas.core import names
from paas.core.context import Context
from paas.errors import Conflict, NotFound, PaasError
from paas.services import access
from paas.services.locks import app_lock
from paas.store import App, StorageDir

SETTING = "storage_mounts"  # per-app JSON list of mounts: kept on rename, deleted with the app
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
DIR_MODE = 0o750  # the app user reads and writes; other host users do not look in
ROOT_MODE = 0o755
CONTAINER_PATH_RE = re.compile(r"(/[A-Za-z0-9._@+-]+)+")
MAX_CONTAINER_PATH = 255

# Container paths a mount would break. Under these: the system and the kernel's filesystems
# (the container would not boot or would see the host's files in their place) and the launcher
# and buildpack state inside the app dir (the release could not start).
DENIED_TREES = (
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/run",
    "/var/run",
    "/var/lib/dpkg",
    "/.paas",
    "/start",
    "/app/.paas",
    "/app/.profile.d",
    "/app/.heroku",
)
DENIED_EXACT = ("/app", "/var")  # would hide the app's code or the OS's own files (folders in them are fine)


@dataclass(frozen=True)
class Mount:
    host: str  # absolute, symlinks resolved
    container: str
    read_only: bool = False

    @property
    def spec(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")

    def as_dict(self) -> dict:
        """Dokku's `storage:list --format json` keys."""
        return {
            "host_path": self.host,
            "container_path": self.container,
            "volume_options": "ro" if self.read_only else "",
        }


def storage_root(ctx: Context) -> Path:
    return ctx.settings.storage_dir


def _real_root(ctx: Context) -> str:
    return os.path.realpath(storage_root(ctx))


def check_name(name: str) -> str:
    """A storage directory's name: one path component, no dots-only tricks."""
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise PaasError(
            f"invalid storage directory name {name[:80]!r}: use 1-64 of a-z 0-9 . _ - "
            "(starting with a letter or digit, no '..')"
        )
    return name


def _no_control(value: str, what: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise PaasError(f"{what} must not contain control characters")


def ensure_directory(ctx: Context, name: str, app_name: str | None = None) -> tuple[Path, bool]:
    """Make `<storage dir>/<name>` owned by the app user (uid/gid 1000); (path, whether new).
    An existing one of the actor's gets its owner and mode set again, as Dokku's ensure-directory
    does; one of someone else's is refused (its name is taken). With `app_name` (manage on the
    app) the folder is the app's: its managers may mount it into it."""
    check_name(name)
    if app_name is not None:
        app: App | None = access.authorize(ctx, app_name, "storage:ensure-directory")
    else:
        app = None
        access.require_user(ctx, "storage:ensure-directory")
    known = ctx.store.get_storage_dir(name)
    root = storage_root(ctx)
    if ((root / name).exists() or known is not None) and not _may_use(ctx, known, app):
        raise Conflict(f"the storage directory name {name!r} is taken: choose another")
    root.mkdir(parents=True, exist_ok=True, mode=ROOT_MODE)
    path = root / name
    created = False
    try:
        path.mkdir(mode=DIR_MODE)
        created = True
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise PaasError(f"{path} exists and is not a directory") from None
    try:
        os.chown(path, names.APP_UID, names.APP_UID, follow_symlinks=False)
        os.chmod(path, DIR_MODE)  # not a symlink (checked above) in a dir only root writes
    except PermissionError:
        raise PaasError(f"cannot give {path} to uid {names.APP_UID}: the server must run as root") from None
    if created or known is None:
        ctx.store.set_storage_dir(name, access.actor_id(ctx), app.id if app else None)
    ctx.store.add_event(app, ctx.actor, "storage:ensure-directory", str(path))
    return path, created


def _may_use(ctx: Context, folder: StorageDir | None, app: App | None) -> bool:
    """Whether the actor may use the folder (mount it into `app`, make it again): its owner, an
    admin, or, for a folder made for an app, one who may manage that app (checked by the caller),
    for that app. A folder without a record (made before owners were kept) is the admins'."""
    if access.owns(ctx, folder.owner_id if folder else None):
        return True
    return folder is not None and app is not None and folder.app_id == app.id


def check_host_dir(ctx: Context, host: str) -> str:
    """The host directory of a mount, symlinks and `..` resolved: it must be a directory
    directly in the storage dir, and exist."""
    real = _resolve_host_dir(ctx, host)
    _exists(real)
    return real


def _exists(real: str) -> None:
    if not os.path.isdir(real):
        name = os.path.basename(real)
        raise PaasError(f"host directory {real} does not exist (storage:ensure-directory {name} makes it)")


def _resolve_host_dir(ctx: Context, host: str) -> str:
    """`check_host_dir` but for whether it exists (asked only of whom may know)."""
    _no_control(host, "a host directory")
    root = storage_root(ctx)
    if not host.startswith("/"):
        raise PaasError(f"host directory must be an absolute path under {root}/")
    real = os.path.realpath(host)
    parent, name = os.path.split(real)
    if parent != _real_root(ctx):
        if real.startswith(_real_root(ctx) + os.sep):
            raise PaasError(
                f"host directory must be a storage directory itself ({root}/<name>), not a folder in one"
            )
        raise PaasError(f"host directory must be under {root}/")
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise PaasError(f"host directory must be one made by storage:ensure-directory, not {name[:80]!r}")
    return real


def check_container_path(path: str) -> str:
    """Absolute, normalised, of plain characters, and not over something the container needs."""
    _no_control(path, "a container path")
    if not path.startswith("/"):
        raise PaasError(f"container path must be absolute: {path[:80]!r}")
    if path == "/":
        raise PaasError("container path must not be / (it would replace the whole image)")
    if posixpath.normpath(path) != path or path.startswith("//"):
        raise PaasError(f"container path must be normalised (no //, /./, /../ or trailing /): {path[:80]!r}")
    if len(path) > MAX_CONTAINER_PATH or not CONTAINER_PATH_RE.fullmatch(path):
        raise PaasError(f"container path may hold only letters, digits and ._@+- between /: {path[:80]!r}")
    for tree in DENIED_TREES:
        if path == tree or path.startswith(tree + "/"):
            raise PaasError(f"container path {path} is refused: {tree} belongs to the image or the kernel")
    if path in DENIED_EXACT:
        raise PaasError(f"container path {path} is refused: it hides files of the image (use a folder in it)")
    return path


def _split(spec: str) -> tuple[str, str, bool]:
    parts = spec.split(":")
    read_only = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        read_only = parts.pop() == "ro"
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise PaasError("give <host-dir>:<container-path>[:ro], e.g. /var/lib/paas/storage/data:/app/data")
    return parts[0], parts[1], read_only


def parse_mount(ctx: Context, spec: str, app: App) -> Mount:
    """A mount the user asked for: every part checked, the host path resolved, the folder one the
    actor may mount into `app` (to anyone else it does not exist, whether or not it does)."""
    _no_control(spec, "a mount")
    host, container, read_only = _split(spec)
    real = _resolve_host_dir(ctx, host)
    name = os.path.basename(real)
    folder = ctx.store.get_storage_dir(name)
    if not _may_use(ctx, folder, app):
        access.require_owner(
            ctx, folder.owner_id if folder else None, "storage:mount", f"storage directory {name!r}"
        )
    _exists(real)
    return Mount(real, check_container_path(container), read_only)


def list_mounts(ctx: Context, app: App) -> list[Mount]:
    raw = ctx.store.get_setting(app.id, SETTING)
    return [Mount(**m) for m in json.loads(raw)] if raw else []


def _save(ctx: Context, app: App, mounts: list[Mount]) -> None:
    value = json.dumps([m.__dict__ for m in mounts]) if mounts else None
    ctx.store.set_setting(app.id, SETTING, value)


def mounts_of(ctx: Context, app_name: str) -> list[Mount]:
    """storage:list: host paths are the host's business, so listing them needs `manage` too."""
    return list_mounts(ctx, access.authorize(ctx, app_name, "storage:list"))


def mount(ctx: Context, app_name: str, spec: str) -> Mount:
    app = access.authorize(ctx, app_name, "storage:mount")
    new = parse_mount(ctx, spec, app)
    with app_lock(ctx, app.name):  # read-modify-write of the app's list
        mounts = list_mounts(ctx, app)
        for m in mounts:
            if m.container == new.container:
                if m.host == new.host:
                    raise Conflict(f"{app.name} already mounts {m.host} at {m.container}")
                raise Conflict(f"{app.name} already has a mount at {m.container} (from {m.host})")
        _save(ctx, app, [*mounts, new])
        ctx.store.add_event(app.name, ctx.actor, "storage:mount", new.spec)
    return new


def unmount(ctx: Context, app_name: str, spec: str) -> Mount:
    """Remove a mount named as it was mounted (the host directory need not exist any more)."""
    app = access.authorize(ctx, app_name, "storage:unmount")
    _no_control(spec, "a mount")
    host, container, _ = _split(spec)
    named = {os.path.normpath(host), os.path.realpath(host)}  # as stored, or by a symlink to it
    with app_lock(ctx, app.name):
        mounts = list_mounts(ctx, app)
        found = [m for m in mounts if m.host in named and m.container == container]
        if not found:
            raise NotFound(f"{app.name} has no mount {host}:{container}")
        _save(ctx, app, [m for m in mounts if m not in found])
        ctx.store.add_event(app.name, ctx.actor, "storage:unmount", found[0].spec)
    return found[0]


def checked_mounts(ctx: Context, app: App) -> list[Mount]:
    """The app's mounts for a container about to start, each checked again: a directory that
    went away fails the deploy rather than start the app without its data."""
    out = []
    for m in list_mounts(ctx, app):
        try:
            check_host_dir(ctx, m.host)
        except PaasError as exc:
            raise PaasError(f"mount {m.spec}: {exc} (or storage:unmount {app.name} {m.spec})") from None
        out.append(m)
    return out


def unmounted_dirs(ctx: Context) -> list[Path]:
    """Storage directories no app mounts: what a destroyed app leaves behind (and any made but
    never mounted). Derived from the apps left, as the destroyed app's records are gone."""
    root = storage_root(ctx)
    if not root.is_dir():
        return []
    used = {m.host for a in ctx.store.list_apps() for m in list_mounts(ctx, a)}
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and str(p) not in used)
