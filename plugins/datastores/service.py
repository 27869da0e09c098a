"""Backing services (Postgres, Redis): the rules every kind of the datastores plugin shares.

A kind's module (postgres.py, redis.py) describes it (`Kind`: image recipe, the config var a
link sets, how to check health, set the password, dump and restore); everything else is here, the
same for every kind:

- A service is a record (`<data dir>/services/<kind>/<name>/service.json`, 0600: it holds the
  generated password), one container and one named volume. Backups live next to the record
  (`backups/`), written atomically with a sha256 beside each, and outlive a destroyed service.
- A service has an owner: the user who created it (an app.json addon: the pusher). Only its
  owner and admins read, change, back up or link it; to anyone else it does not exist. Who may
  create one: admins, and every user when PAAS_SERVICE_CREATE=users (up to
  PAAS_SERVICES_PER_USER each). A service created on the host, or before owners were kept, is
  the admins'. The rules are in `paas/services/access.py`; each entry here checks them first.
- A link puts the service on the app's own network (an alias the app resolves) and sets the
  URL config var through `config.set_config`: a new release and a zero-downtime restart.
  Unlinking unsets it and leaves the network. The service is health-checked before a link.
  Linking needs the service's ownership and `manage` on the app. A link is to the app's id: a
  new app of a destroyed one's name is linked to nothing.
- The reconcile pass (re)creates a missing container, starts a stopped one, fixes its networks
  to exactly those of the linked apps and runs scheduled backups.
- app.json `addons` are created and linked during the first push, before the release is
  recorded (the push holds the app's lock, so the config is written directly: there is no
  running release to restart yet). They only create: an existing service of the derived name is
  linked only when the pusher owns it.
- When an app is destroyed, its services are kept for their owner, unlinked; one that is no
  longer linked to any app gets a final backup. The destroy's output says so. A review app's
  addons (made by its first push) are its own: they are destroyed with it, without a backup,
  unless their owner linked them to another app meanwhile.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
from croniter import croniter
from docker.models.containers import Container

from paas.buildpacks import service_images
from paas.buildpacks.service_images import ServiceImageRecipe
from paas.core import names, networks, validation
from paas.core.container import Limits
from paas.plugin_api import App, BuildLog, Conflict, Context, NotFound, PaasError, RestoreSource, access
from paas.services import config as config_service
from paas.services import quotas
from paas.services.containers import app_network, network_name

from . import containers as sc

log = logging.getLogger("paas.services.backing")

SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
ALIAS_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,49}$")
BACKUP_RE = re.compile(r"^[a-z0-9-]+-\d{8}T\d{6}(\d{6})?Z\.[a-z]+$")
HEALTH_TIMEOUT = 60.0

Emit = Callable[[bytes], None]


@dataclass(frozen=True)
class Kind:
    """What a service plugin tells the shared rules about its kind."""

    name: str  # postgres, redis: the command namespace
    title: str  # Postgres
    env_var: str  # DATABASE_URL: what a link sets unless --alias says NAME (NAME_URL)
    addons: tuple[str, ...]  # app.json addon names this kind provides (heroku-postgresql, ...)
    recipe: ServiceImageRecipe
    data_path: str  # the volume's mount point
    url: Callable[[Record], str]  # the URL a linked app gets
    health: Callable[[docker.DockerClient, Container, Record], tuple[bool, str]]
    setup: Callable[[docker.DockerClient, Container, Record], None]  # after each container start
    export_cmd: Callable[[Record], tuple[list[str], dict[str, str]]]  # (command, exec env)
    import_cmd: Callable[[Record], tuple[list[str], dict[str, str]]]
    connect_cmd: Callable[[Record], tuple[list[str], dict[str, str]]]
    backup_ext: str = "dump"
    # As a linked app will connect: over TCP to the address on the app's network, with the password
    # (and TLS for Postgres); the link completes only when this passes.
    reachable: Callable[[docker.DockerClient, Container, Record, str], tuple[bool, str]] | None = None
    after_import: Callable[[docker.DockerClient, Container, Record], None] | None = None
    # The dump for a platform backup, if not `export_cmd`'s: uncompressed, so the backup engine
    # deduplicates it between snapshots (a compressed dump changes throughout for one new row).
    snapshot_cmd: Callable[[Record], tuple[list[str], dict[str, str]]] | None = None

    def env_key(self, alias: str | None) -> str:
        return f"{alias}_URL" if alias else self.env_var


@dataclass
class Link:
    app: str  # the app's name (for showing it; kept up to date on rename)
    alias: str | None = None
    app_id: int | None = None  # the app: a name is not an identity


@dataclass
class Record:
    kind: str
    name: str
    password: str
    created_at: str
    links: list[Link] = field(default_factory=list)
    schedule: str | None = None  # a cron expression (UTC) for postgres:backup-schedule
    keep: int | None = None  # how many scheduled backups to keep
    last_scheduled: str | None = None
    owner_id: int | None = None  # the user who created it (None: the admins')
    review_app_id: int | None = None  # a review app's addon: destroyed with that app, data and all

    @property
    def host(self) -> str:
        return names.service_host(self.kind, self.name)

    @property
    def database(self) -> str:
        return self.name

    def linked_apps(self) -> set[str]:
        return {link.app for link in self.links}

    def linked_ids(self) -> set[int]:
        return {link.app_id for link in self.links if link.app_id is not None}

    def links_of(self, app: App) -> list[Link]:
        return [link for link in self.links if link.app_id == app.id]


@dataclass(frozen=True)
class Backup:
    id: str
    size: int
    created_at: str
    sha256: str
    owner_id: int | None = None  # the service's owner when it was taken (None: the admins')


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """A kind of this folder, for what spans kinds (the dashboard's pages, the quota's count)."""
    _KINDS[kind.name] = kind
    return kind


def kinds(ctx: Context) -> list[Kind]:
    """The kinds whose plugin is on (PAAS_DISABLED_PLUGINS may turn one off)."""
    return [_KINDS[k] for k in sorted(_KINDS) if k not in ctx.settings.disabled_plugins]


def kind_named(name: str) -> Kind:
    if name not in _KINDS:
        raise NotFound(f"no service kind {name!r}")
    return _KINDS[name]


# ---------------------------------------------------------------- records on disk


def check_name(name: str, kind: Kind) -> str:
    if not isinstance(name, str) or not SERVICE_NAME_RE.fullmatch(name) or name.endswith("-"):
        raise PaasError(
            f"invalid {kind.name} service name {name!r}: 1-30 lowercase letters, digits and dashes, "
            "starting with a letter"
        )
    return name


def _record_path(ctx: Context, kind: Kind, name: str) -> Path:
    return names.service_dir(ctx.settings, kind.name, name) / "service.json"


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, 0600 from the first byte (the record holds the password)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(ctx: Context, record: Record) -> None:
    path = names.service_dir(ctx.settings, record.kind, record.name) / "service.json"
    _write_private(path, json.dumps(asdict(record), indent=2, sort_keys=True).encode())


def load(ctx: Context, kind: Kind, name: str) -> Record | None:
    return _read(ctx, kind, name)[0]


def _read(ctx: Context, kind: Kind, name: str) -> tuple[Record | None, bool]:
    """The record, and whether a link of it was written before links held the app's id: such a
    link is to the app of that name now (or to none), and the reconcile pass saves it so."""
    path = _record_path(ctx, kind, name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, False
    links, legacy = [], False
    for raw in data.pop("links", []):
        link = Link(**raw)
        if link.app_id is None:
            legacy = True
            app = ctx.store.get_app(link.app)
            if app is None:
                continue
            link.app_id = app.id
        links.append(link)
    return Record(**{**data, "links": links}), legacy


def _require(ctx: Context, kind: Kind, name: str, operation: str) -> Record:
    """The service, if the actor owns it (or is an admin); to anyone else it does not exist."""
    record = get(ctx, kind, name)
    access.require_owner(ctx, record.owner_id, operation, f"{kind.name} service {name!r}")
    return record


def owned_count(ctx: Context, kind: Kind, user_id: int) -> int:
    """How many services of the kind the user owns (their part of the `services` quota)."""
    return sum(1 for r in all_records(ctx, kind) if r.owner_id == user_id)


def get(ctx: Context, kind: Kind, name: str) -> Record:
    check_name(name, kind)
    record = load(ctx, kind, name)
    if record is None:
        raise NotFound(f"{kind.name} service {name!r} does not exist")
    return record


def all_records(ctx: Context, kind: Kind) -> list[Record]:
    root = names.services_dir(ctx.settings, kind.name)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if SERVICE_NAME_RE.fullmatch(folder.name) and (record := load(ctx, kind, folder.name)):
            out.append(record)
    return out


class Busy(Exception):
    """Another process changes this service now (the reconcile pass skips it this time)."""


@contextmanager
def service_lock(ctx: Context, kind: Kind, name: str, wait: bool = True) -> Iterator[None]:
    """One change to a service at a time (commands, pushes and the server are separate
    processes); the reconcile pass never waits, so it never undoes a link half made."""
    ctx.settings.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.settings.locks_dir / f"service-{kind.name}-{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(name) from None
        yield


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- containers


def _spec(ctx: Context, kind: Kind, record: Record, image: str) -> sc.ServiceSpec:
    s = ctx.settings
    return sc.ServiceSpec(
        instance=s.instance_id,
        kind=kind.name,
        name=record.name,
        image=image,
        volume=names.service_volume(s.instance_id, kind.name, record.name),
        data_path=kind.data_path,
        limits=Limits(s.default_memory, s.default_cpus, s.default_pids),
        env={"PAAS_SERVICE": record.name},
    )


def container_of(ctx: Context, kind: Kind, name: str) -> Container | None:
    return sc.find(ctx.docker, ctx.settings.instance_id, kind.name, name)


def _running(ctx: Context, kind: Kind, record: Record) -> Container:
    container = container_of(ctx, kind, record.name)
    if container is None or container.status not in sc.RUNNING:
        raise PaasError(
            f"{kind.name} service {record.name!r} is not running (the server restarts it; try again)"
        )
    return container


def wait_healthy(
    ctx: Context,
    kind: Kind,
    record: Record,
    container: Container,
    timeout: float = HEALTH_TIMEOUT,
    network: str | None = None,
) -> None:
    """The kind's health check; with `network`, also as an app there will connect."""
    what = f"{kind.name} service {record.name}"

    def probe() -> tuple[bool, str]:
        healthy, why = kind.health(ctx.docker, container, record)
        if not healthy or network is None or kind.reachable is None:
            return healthy, why
        address = sc.address_on(container, network)
        if address is None:
            return False, f"no address on {network}"
        return kind.reachable(ctx.docker, container, record, address)

    sc.wait_healthy(ctx.docker, container, probe, timeout, what)


def _start_container(ctx: Context, kind: Kind, record: Record, log: BuildLog) -> Container:
    image = service_images.ensure_image(ctx.settings, ctx.docker, kind.recipe, log.detail)
    container = sc.create(ctx.docker, _spec(ctx, kind, record, image))
    wait_healthy(ctx, kind, record, container)
    kind.setup(ctx.docker, container, record)
    wait_healthy(ctx, kind, record, container)
    return container


def state(ctx: Context, kind: Kind, name: str) -> str:
    container = container_of(ctx, kind, name)
    return "missing" if container is None else container.status


# ---------------------------------------------------------------- create, destroy, list, info


def create(ctx: Context, kind: Kind, name: str, log: BuildLog) -> Record:
    """A new service of the actor's with a generated password; a failure leaves nothing behind."""
    owner = access.require_service_create(ctx, f"{kind.name}:create")
    check_name(name, kind)
    quotas.require_service_slot(ctx, owner)
    with service_lock(ctx, kind, name):
        if load(ctx, kind, name) is not None:
            raise Conflict(f"{kind.name} service {name!r} already exists")
        if container_of(ctx, kind, name) is not None:
            raise Conflict(f"a {kind.name} container named {name!r} exists without a record; remove it first")
        record = Record(
            kind=kind.name, name=name, password=secrets.token_hex(24), created_at=now_iso(), owner_id=owner
        )
        log.step(f"Creating {kind.name} service {name}")
        try:
            _start_container(ctx, kind, record, log)
            _save(ctx, record)
        except BaseException:
            _remove_container_and_volume(ctx, kind, name)
            _record_path(ctx, kind, name).unlink(missing_ok=True)
            raise
    ctx.store.add_event(None, ctx.actor, f"{kind.name}:create", name)
    log.done(f"{kind.title} service {name} created")
    return record


def _remove_container_and_volume(ctx: Context, kind: Kind, name: str) -> None:
    container = container_of(ctx, kind, name)
    if container is not None:
        sc.remove(container)
    sc.remove_volume(ctx.docker, names.service_volume(ctx.settings.instance_id, kind.name, name))


def destroy(
    ctx: Context, kind: Kind, name: str, confirm: str | None, keep_backup: bool, log: BuildLog
) -> Backup | None:
    """Refused while linked; a final backup is kept unless `keep_backup` is False."""
    record = _require(ctx, kind, name, f"{kind.name}:destroy")
    if record.links:
        apps = ", ".join(sorted(record.linked_apps()))
        raise Conflict(f"{kind.name} service {name} is linked to {apps}: unlink it first")
    if confirm != name:
        raise PaasError(
            f"this destroys {kind.name} service {name} and its data; run again with --confirm {name}"
        )
    final = None
    with service_lock(ctx, kind, name):
        record = get(ctx, kind, name)
        if record.links:
            raise Conflict(f"{kind.name} service {name} was linked meanwhile: unlink it first")
        if keep_backup:
            if container_of(ctx, kind, name) is None:
                raise PaasError(
                    f"{kind.name} service {name} has no container to back up; destroy it with --no-backup"
                )
            final = _backup_locked(ctx, kind, record, "final")
            where = _backups_dir(ctx, kind, name) / final.id
            log.step(f"Kept a final backup: {final.id} ({final.size} bytes) in {where}")
        _remove_container_and_volume(ctx, kind, name)
        _record_path(ctx, kind, name).unlink(missing_ok=True)
    ctx.store.add_event(None, ctx.actor, f"{kind.name}:destroy", name)
    log.done(f"{kind.title} service {name} destroyed")
    return final


def list_services(ctx: Context, kind: Kind) -> list[dict]:
    """The services the actor owns (admins: all)."""
    return [
        {
            "name": r.name,
            "state": state(ctx, kind, r.name),
            "links": sorted(r.linked_apps()),
            "created_at": r.created_at,
            "owner": _owner_name(ctx, r),
        }
        for r in all_records(ctx, kind)
        if access.owns(ctx, r.owner_id)
    ]


def _owner_name(ctx: Context, record: Record) -> str | None:
    user = ctx.store.get_user_by_id(record.owner_id) if record.owner_id is not None else None
    return user.name if user else None


def mask(url: str, password: str) -> str:
    return url.replace(password, "********")


def info(ctx: Context, kind: Kind, name: str) -> dict:
    """For its owner and admins; admins see the password in the URL, the owner sees it masked
    (their linked apps have it in their config)."""
    record = _require(ctx, kind, name, f"{kind.name}:info")
    container = container_of(ctx, kind, name)
    url = kind.url(record)
    return {
        "name": record.name,
        "kind": kind.name,
        "owner": _owner_name(ctx, record),
        "state": "missing" if container is None else container.status,
        "url": url if access.is_admin(ctx) else mask(url, record.password),
        "host": record.host,
        "links": [{"app": link.app, "config_var": kind.env_key(link.alias)} for link in record.links],
        "created_at": record.created_at,
        "container": container.name if container is not None else None,
        "image": (container.attrs.get("Config") or {}).get("Image") if container is not None else None,
        "volume": names.service_volume(ctx.settings.instance_id, kind.name, name),
        "backups": len(_list_backups(ctx, kind, name)),
        "backup_schedule": record.schedule,
        "backup_keep": record.keep,
    }


def links_of_app(ctx: Context, kinds: list[Kind], app_name: str) -> list[dict]:
    """For an app's page (those who may view it): the services linked to it, with their state."""
    app = access.authorize(ctx, app_name, "apps:info")
    out = []
    for kind in kinds:
        for record in all_records(ctx, kind):
            out.extend(
                {
                    "kind": kind.name,
                    "name": record.name,
                    "config_var": kind.env_key(link.alias),
                    "state": state(ctx, kind, record.name),
                }
                for link in record.links_of(app)
            )
    return out


# ---------------------------------------------------------------- link, unlink


def _check_alias(alias: str | None) -> str | None:
    if alias is None:
        return None
    if not ALIAS_RE.fullmatch(alias):
        raise PaasError(f"invalid alias {alias!r}: uppercase letters, digits and _, starting with a letter")
    return alias


def _join_network(ctx: Context, kind: Kind, record: Record, container: Container, app: App) -> str:
    network = app_network(ctx, app)
    sc.connect(ctx.docker, container, network, record.host)
    return network


def link(ctx: Context, kind: Kind, name: str, app_name: str, alias: str | None, log: BuildLog) -> None:
    """Join the app's network, check health, then set the URL: a new release + restart.

    The link is recorded before the release (so the reconcile pass keeps the network) and taken
    back if the release fails. The service lock is never held while waiting for the app's lock
    (a first push holds that one and takes this one for app.json addons)."""
    app = access.authorize(ctx, app_name, f"{kind.name}:link")  # it gets the service's password
    _require(ctx, kind, name, f"{kind.name}:link")
    _check_alias(alias)
    key = kind.env_key(alias)
    new = Link(app.name, alias, app.id)
    with service_lock(ctx, kind, name):
        record = get(ctx, kind, name)
        if any(kind.env_key(link.alias) == key for link in record.links_of(app)):
            raise Conflict(f"{kind.name} service {name} is already linked to {app.name} as {key}")
        current = ctx.store.get_config(app.id).get(key)
        if current is not None and current != kind.url(record):
            raise Conflict(f"{app.name} already has {key} set: unset it, or link with --alias NAME")
        container = _running(ctx, kind, record)
        network = _join_network(ctx, kind, record, container, app)
        try:
            wait_healthy(ctx, kind, record, container, network=network)
        except BaseException:
            if not record.links_of(app):
                sc.disconnect(ctx.docker, container, network)
            raise
        record.links.append(new)
        _save(ctx, record)
    try:
        log.step(f"Linking {kind.name} service {name} to {app.name} as {key}")
        config_service.set_config(ctx, app.name, {key: kind.url(record)}, log, restart=True)
    except BaseException:
        _drop_link(ctx, kind, name, new)
        raise
    ctx.store.add_event(app, ctx.actor, f"{kind.name}:link", f"{name} as {key}")


def _drop_link(ctx: Context, kind: Kind, name: str, gone: Link) -> None:
    """Forget one link; leave the app's network when no other link of the app remains."""
    with service_lock(ctx, kind, name):
        record = load(ctx, kind, name)
        if record is None:
            return
        record.links = [link for link in record.links if link != gone]
        _save(ctx, record)
        container = container_of(ctx, kind, name)
        if container is not None and gone.app_id not in record.linked_ids():
            sc.disconnect(ctx.docker, container, names.app_network(ctx.settings.instance_id, gone.app))


def unlink(ctx: Context, kind: Kind, name: str, app_name: str, log: BuildLog) -> None:
    """Unset the URL (a new release), then forget the link and leave the app's network; a
    release that fails leaves the link as it was."""
    app = access.authorize(ctx, app_name, f"{kind.name}:unlink")
    record = _require(ctx, kind, name, f"{kind.name}:unlink")
    mine = record.links_of(app)
    if not mine:
        raise NotFound(f"{kind.name} service {name} is not linked to {app.name}")
    config = ctx.store.get_config(app.id)
    keys = [
        kind.env_key(link.alias) for link in mine if config.get(kind.env_key(link.alias)) == kind.url(record)
    ]
    if keys:
        log.step(f"Unlinking {kind.name} service {name} from {app.name} ({', '.join(keys)})")
        config_service.unset_config(ctx, app.name, keys, log, restart=True)
    for link in mine:
        _drop_link(ctx, kind, name, link)
    ctx.store.add_event(app, ctx.actor, f"{kind.name}:unlink", name)


def addon_kind(entry: Any) -> tuple[str, str | None] | None:
    """(addon name, alias) of one app.json `addons` entry: "heroku-postgresql[:plan]" or
    {"plan": "heroku-postgresql[:plan]", "as": "NAME"}; None for what is not ours to read."""
    if isinstance(entry, str):
        return entry.partition(":")[0].strip(), None
    if isinstance(entry, dict) and isinstance(entry.get("plan"), str):
        alias = entry.get("as")
        return entry["plan"].partition(":")[0].strip(), alias if isinstance(alias, str) else None
    return None


def provision_addons(ctx: Context, kind: Kind, app: App, addons: list[Any], log: BuildLog) -> list[str]:
    """During the first push (the app's lock is held by it): create the services app.json asks
    for and write their URLs into the app's config, before the release (and its release phase)
    is made from that config. The service is named after the app (and `-<alias>`) and belongs to
    the pusher (who needs the right to create services). Addons only create: a service of that
    name that exists is linked only when the pusher owns it (a destroyed app's database is kept
    for its owner, and is not handed to whoever pushes a new app of the old name)."""
    ours = [p for p in map(addon_kind, addons) if p is not None and p[0] in kind.addons]
    if not ours or ctx.store.current_release(app.id) is not None:
        return []
    done = []
    for parsed in ours:
        alias = parsed[1].upper().removesuffix("_URL") if parsed[1] else None
        _check_alias(alias)
        key = kind.env_key(alias)
        name = app.name if alias is None else f"{app.name}-{alias.lower().replace('_', '-')}"[:30].rstrip("-")
        record = load(ctx, kind, name)
        if record is not None and app.id not in record.linked_ids():
            if not access.owns(ctx, record.owner_id):
                raise Conflict(
                    f"app.json addon {parsed[0]}: {kind.name} service {name} exists and is not yours; its "
                    f'owner may link it ({kind.name}:link {name} {app.name}), or give the addon another "as"'
                )
            if record.linked_ids():
                raise Conflict(
                    f"app.json addon {parsed[0]}: {kind.name} service {name} is linked to other apps; "
                    f"link one yourself with {kind.name}:link"
                )
        made = record is None
        if record is None:
            record = create(ctx, kind, name, log)
        with service_lock(ctx, kind, name):
            record = get(ctx, kind, name)
            if made and app.parent_id is not None:  # a review app's own: it goes with the app
                record.review_app_id = app.id
                _save(ctx, record)
            container = _running(ctx, kind, record)
            network = _join_network(ctx, kind, record, container, app)
            wait_healthy(ctx, kind, record, container, network=network)
            config = ctx.store.get_config(app.id)
            config[key] = kind.url(record)
            validation.config_size(config)
            ctx.store.replace_config(app.id, config)
            if not any(kind.env_key(link.alias) == key for link in record.links_of(app)):
                record.links.append(Link(app.name, alias, app.id))
                _save(ctx, record)
        ctx.store.add_event(app, ctx.actor, f"{kind.name}:link", f"{name} as {key} (app.json)")
        log.step(f"app.json addon {parsed[0]}: linked {kind.name} service {name} as {key}")
        done.append(name)
    return done


def app_destroyed(ctx: Context, kind: Kind, app: App, log: BuildLog) -> None:
    """The app is gone (and its config with it): its services are kept for their owner. Each
    drops its links to the app and leaves its network; one linked to no app any more gets a
    final backup first (its data was the app's). Then the network itself can go (apps:destroy
    could not remove it while we were on it)."""
    for record in all_records(ctx, kind):
        if not record.links_of(app) and record.review_app_id != app.id:
            continue
        final, why = None, ""
        with service_lock(ctx, kind, record.name):
            fresh = get(ctx, kind, record.name)
            fresh.links = [link for link in fresh.links if link.app_id != app.id]
            if fresh.review_app_id == app.id and not fresh.links:
                _remove_container_and_volume(ctx, kind, record.name)
                _record_path(ctx, kind, record.name).unlink(missing_ok=True)
                log.step(f"Destroyed {kind.name} service {record.name}, the review app's own")
                ctx.store.add_event(None, ctx.actor, f"{kind.name}:destroy", f"{record.name} with {app.name}")
                continue
            fresh.review_app_id = None  # linked elsewhere meanwhile: kept like any other
            _save(ctx, fresh)
            container = container_of(ctx, kind, record.name)
            if container is not None:
                sc.disconnect(ctx.docker, container, names.app_network(ctx.settings.instance_id, app.name))
            if not fresh.links:
                try:
                    final = _backup_locked(ctx, kind, fresh, "final")
                except (PaasError, docker.errors.DockerException) as exc:
                    why = f" (no final backup: {exc})"
        owner = _owner_name(ctx, record) or "the admins"
        kept = f"with a final backup {final.id}" if final else "unlinked" + why
        log.step(
            f"Kept {kind.name} service {record.name} for {owner}, {kept}; "
            f"destroy it with {kind.name}:destroy {record.name}"
        )
        ctx.store.add_event(
            None, ctx.actor, f"{kind.name}:kept", f"{record.name} of {app.name}: {kept}"[:300]
        )
    networks.remove_app_networks(ctx.docker, ctx.settings.instance_id, app.name)


def linked_keys(ctx: Context, kind: Kind, app: App) -> set[str]:
    """The config keys the kind's links set on the app, and the kind's own variable however it
    was set (a review app takes none of them from its parent: it gets its own addons)."""
    keys = {kind.env_var}
    for record in all_records(ctx, kind):
        keys.update(kind.env_key(link.alias) for link in record.links_of(app))
    return keys


def app_renamed(ctx: Context, kind: Kind, app: App, old_name: str) -> None:
    """Links (to the app's id) show the new name; the reconcile pass moves the networks (done
    here too)."""
    for record in all_records(ctx, kind):
        if not record.links_of(app):
            continue
        with service_lock(ctx, kind, record.name):
            fresh = get(ctx, kind, record.name)
            for link in fresh.links_of(app):
                link.app = app.name
            _save(ctx, fresh)
            _converge_networks(ctx, kind, fresh)
    networks.remove_app_networks(ctx.docker, ctx.settings.instance_id, old_name)


# ---------------------------------------------------------------- reconcile


def _converge_networks(ctx: Context, kind: Kind, record: Record) -> list[str]:
    container = container_of(ctx, kind, record.name)
    if container is None:
        return []
    actions = []
    wanted: dict[str, App] = {}
    for app_id in record.linked_ids():
        app = ctx.store.get_app_by_id(app_id)
        if app is not None:
            wanted[network_name(ctx, app)] = app
    have = sc.networks_of(container)
    for network, app in wanted.items():
        if network not in have:
            _join_network(ctx, kind, record, container, app)
            actions.append(f"joined {network}")
    for network in have - set(wanted):
        sc.disconnect(ctx.docker, container, network)
        actions.append(f"left {network}")
    return actions


_backups_running: set[tuple[str, str]] = set()
_guard = threading.Lock()


def reconcile(ctx: Context, kind: Kind, now: datetime | None = None) -> list[str]:
    """Containers back (missing: recreated on the kept volume; stopped: started), networks
    exactly those of the linked apps, scheduled backups started (in a thread)."""
    actions = []
    for record in all_records(ctx, kind):
        try:
            actions += _reconcile_one(ctx, kind, record, now or datetime.now(UTC))
        except (PaasError, docker.errors.DockerException) as exc:
            log.warning("reconcile %s %s: %s", kind.name, record.name, exc)
    for line in actions:
        log.info("%s: %s", kind.name, line)
    return actions


def _reconcile_one(ctx: Context, kind: Kind, record: Record, now: datetime) -> list[str]:
    try:
        with service_lock(ctx, kind, record.name, wait=False):
            fresh, legacy = _read(ctx, kind, record.name)
            if fresh is None:
                return []
            if legacy:  # links by name only, from before: kept as the apps they name now
                _save(ctx, fresh)
            actions = _converge(ctx, kind, fresh)
    except Busy:
        return []
    if fresh.schedule and _due(fresh, now):
        actions.append(f"{kind.name} {fresh.name}: scheduled backup started")
        _start_scheduled_backup(ctx, kind, fresh.name, now)
    return actions


def _converge(ctx: Context, kind: Kind, record: Record) -> list[str]:
    actions = []
    container = container_of(ctx, kind, record.name)
    where = f"{kind.name} {record.name}"
    if container is None:
        _start_container(ctx, kind, record, BuildLog())
        actions.append(f"{where}: container was missing, started again on its volume")
    elif container.status in ("exited", "created", "dead"):
        container.start()
        actions.append(f"{where}: was {container.status}, started")
    return actions + [f"{where}: {a}" for a in _converge_networks(ctx, kind, record)]


def _due(record: Record, now: datetime) -> bool:
    last = datetime.fromisoformat(record.last_scheduled) if record.last_scheduled else None
    if last is None:  # first pass after scheduling: from now on, no catch-up
        return False
    due = croniter(record.schedule, now).get_prev(datetime)
    return due > last


def _start_scheduled_backup(ctx: Context, kind: Kind, name: str, now: datetime) -> None:
    key = (kind.name, name)
    with _guard:
        if key in _backups_running:
            return
        _backups_running.add(key)
    with service_lock(ctx, kind, name):  # marked before it runs: at most once per tick
        record = get(ctx, kind, name)
        record.last_scheduled = now.isoformat(timespec="seconds")
        _save(ctx, record)

    def run() -> None:
        try:
            _backup(ctx, kind, name, "scheduled")
            prune_scheduled(ctx, kind, name)
        except Exception as exc:
            log.warning("scheduled backup of %s %s failed: %s", kind.name, name, exc)
            ctx.store.add_event(None, "paas", f"{kind.name}:backup-failed", f"{name}: {exc}"[:300])
            ctx.plugins.call_post(
                "paas_backup_failed", ctx=ctx, service=f"{kind.name}:{name}", error=str(exc)[:300]
            )
        finally:
            with _guard:
                _backups_running.discard(key)

    threading.Thread(target=run, daemon=True, name=f"backup-{kind.name}-{name}").start()


def set_schedule(ctx: Context, kind: Kind, name: str, schedule: str, keep: int | None) -> Record:
    """A cron expression (UTC), or `off`; `keep` scheduled backups are kept (others pruned)."""
    _require(ctx, kind, name, f"{kind.name}:backup-schedule")
    if keep is not None and not 1 <= keep <= 1000:
        raise PaasError("--keep must be between 1 and 1000")
    schedule = schedule.strip()
    if schedule != "off" and (not croniter.is_valid(schedule) or "\n" in schedule):
        raise PaasError(f'invalid cron schedule {schedule!r} (five fields, e.g. "0 3 * * *", or off)')
    with service_lock(ctx, kind, name):
        record = get(ctx, kind, name)
        record.schedule = None if schedule == "off" else schedule
        record.keep = keep if schedule != "off" else None
        record.last_scheduled = now_iso() if schedule != "off" else None
        _save(ctx, record)
    ctx.store.add_event(None, ctx.actor, f"{kind.name}:backup-schedule", f"{name} {schedule}")
    return record


# ---------------------------------------------------------------- export, import, backups


def _stderr_line(err: bytes) -> str:
    lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


def export(ctx: Context, kind: Kind, name: str, out: Emit) -> None:
    """The service's dump (pg_dump custom format, Redis RDB) streamed to `out`."""
    _export(ctx, kind, _require(ctx, kind, name, f"{kind.name}:export"), out)


def _export(ctx: Context, kind: Kind, record: Record, out: Emit, snapshot: bool = False) -> None:
    """`snapshot`: the kind's dump for a platform backup (the caller checked who asks)."""
    name = record.name
    container = _running(ctx, kind, record)
    cmd, env = (kind.snapshot_cmd if snapshot and kind.snapshot_cmd else kind.export_cmd)(record)
    err = bytearray()
    code = sc.exec_stream(ctx.docker, container, cmd, out, err.extend, env=env)
    if code != 0:
        raise PaasError(f"export of {kind.name} service {name} failed: {_stderr_line(bytes(err))}")


def import_(ctx: Context, kind: Kind, name: str, read_in: Callable[[int], bytes]) -> None:
    """Replace the data with a dump read from `read_in`, all or nothing (a bad dump changes
    nothing)."""
    record = _require(ctx, kind, name, f"{kind.name}:import")
    with service_lock(ctx, kind, name):
        _import_locked(ctx, kind, record, read_in)
    ctx.store.add_event(None, ctx.actor, f"{kind.name}:import", name)


def _import_locked(ctx: Context, kind: Kind, record: Record, read_in: Callable[[int], bytes]) -> None:
    container = _running(ctx, kind, record)
    cmd, env = kind.import_cmd(record)
    err = bytearray()
    code = sc.exec_stream(ctx.docker, container, cmd, lambda b: err.extend(b), err.extend, read_in, env=env)
    if code != 0:
        raise PaasError(
            f"import into {kind.name} service {record.name} failed, nothing changed: "
            + _stderr_line(bytes(err))
        )
    if kind.after_import is not None:
        kind.after_import(ctx.docker, container, record)
        wait_healthy(ctx, kind, record, container)


def _backups_dir(ctx: Context, kind: Kind, name: str) -> Path:
    return names.service_backups_dir(ctx.settings, kind.name, name)


def backup(ctx: Context, kind: Kind, name: str) -> Backup:
    """`postgres:backup`: a backup now, by the service's owner (or an admin)."""
    _require(ctx, kind, name, f"{kind.name}:backup")
    return _backup(ctx, kind, name, "manual")


def _backup(ctx: Context, kind: Kind, name: str, reason: str) -> Backup:
    record = get(ctx, kind, name)
    with service_lock(ctx, kind, name):
        done = _backup_locked(ctx, kind, record, reason)
    ctx.store.add_event(None, ctx.actor or "paas", f"{kind.name}:backup", f"{name} {done.id} ({reason})")
    return done


def _backup_locked(ctx: Context, kind: Kind, record: Record, reason: str) -> Backup:
    """Streamed into a temporary file, fsynced, checksummed, then renamed: a backup that is
    listed is complete. Scheduled ones are marked so `--keep` prunes only those."""
    folder = _backups_dir(ctx, kind, record.name)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup_id = f"{record.name}-{stamp}.{kind.backup_ext}"
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:

            def write(data: bytes) -> None:
                digest.update(data)
                fh.write(data)

            _export(ctx, kind, record, write)
            fh.flush()
            os.fsync(fh.fileno())
        meta = {
            "sha256": digest.hexdigest(),
            "reason": reason,
            "created_at": now_iso(),
            "owner_id": record.owner_id,  # a backup stays its owner's, even when the service is gone
        }
        _write_private(folder / f"{backup_id}.json", json.dumps(meta).encode())
        os.replace(tmp, folder / backup_id)
        dir_fd = os.open(folder, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        (folder / f"{backup_id}.json").unlink(missing_ok=True)
        raise
    return _describe(folder / backup_id)


def _describe(path: Path) -> Backup:
    try:
        meta = json.loads(Path(f"{path}.json").read_text())
    except (OSError, ValueError):
        meta = {}
    stat = path.stat()
    created = meta.get("created_at") or datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(
        timespec="seconds"
    )
    owner = meta.get("owner_id")
    return Backup(
        id=path.name,
        size=stat.st_size,
        created_at=created,
        sha256=meta.get("sha256", ""),
        owner_id=owner if isinstance(owner, int) else None,
    )


def _list_backups(ctx: Context, kind: Kind, name: str) -> list[Backup]:
    folder = _backups_dir(ctx, kind, name)
    if not folder.is_dir():
        return []
    found = [_describe(p) for p in folder.iterdir() if BACKUP_RE.fullmatch(p.name) and p.is_file()]
    return sorted(found, key=lambda b: b.id, reverse=True)


def list_backups(ctx: Context, kind: Kind, name: str) -> list[Backup]:
    """Newest first: those of the actor's (admins: all). Backups outlive the service (a final one
    is kept on destroy): its owner creates a service of the same name again to restore one; a
    backup is its owner's, whoever makes a service of that name."""
    check_name(name, kind)
    if load(ctx, kind, name) is not None:
        _require(ctx, kind, name, f"{kind.name}:backups")
    mine = [b for b in _list_backups(ctx, kind, name) if access.owns(ctx, b.owner_id)]
    if not mine and load(ctx, kind, name) is None:
        raise NotFound(f"{kind.name} service {name!r} does not exist and has no backups")
    return mine


def backup_path(ctx: Context, kind: Kind, name: str, backup_id: str) -> Path:
    """The file of one of the actor's backups (a download, a restore), its name checked (never
    a path from the user)."""
    check_name(name, kind)
    if not BACKUP_RE.fullmatch(backup_id or "") or not backup_id.startswith(f"{name}-"):
        raise PaasError(f"invalid backup id {backup_id!r} (see {kind.name}:backups {name})")
    path = _backups_dir(ctx, kind, name) / backup_id
    if not path.is_file() or not access.owns(ctx, _describe(path).owner_id):
        raise NotFound(f"{kind.name} service {name} has no backup {backup_id}")
    return path


def verify(path: Path) -> None:
    wanted = _describe(path).sha256
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if not wanted or digest.hexdigest() != wanted:
        raise PaasError(f"backup {path.name} does not match its checksum: not restored")


def restore(ctx: Context, kind: Kind, name: str, backup_id: str) -> None:
    record = _require(ctx, kind, name, f"{kind.name}:restore")
    path = backup_path(ctx, kind, name, backup_id)
    verify(path)
    with service_lock(ctx, kind, name), open(path, "rb") as fh:
        _import_locked(ctx, kind, record, fh.read)
    ctx.store.add_event(None, ctx.actor, f"{kind.name}:restore", f"{name} {backup_id}")


def prune_scheduled(ctx: Context, kind: Kind, name: str) -> None:
    record = get(ctx, kind, name)
    if not record.keep:
        return
    scheduled = []
    for b in _list_backups(ctx, kind, name):
        path = _backups_dir(ctx, kind, name) / b.id
        try:
            if json.loads(Path(f"{path}.json").read_text()).get("reason") == "scheduled":
                scheduled.append(path)
        except (OSError, ValueError):
            continue
    for path in scheduled[record.keep :]:
        path.unlink(missing_ok=True)
        Path(f"{path}.json").unlink(missing_ok=True)


# ---------------------------------------------------------------- connect, logs


def connect(
    ctx: Context,
    kind: Kind,
    name: str,
    out: Emit,
    err: Emit,
    read_in: Callable[[int], bytes],
    tty: bool,
    size: tuple[int, int] | None,
    gone: Callable[[], bool],
) -> int:
    """The kind's client (psql, redis-cli) in the service container, attached to the user."""
    record = _require(ctx, kind, name, f"{kind.name}:connect")
    container = _running(ctx, kind, record)
    cmd, env = kind.connect_cmd(record)
    return sc.exec_stream(
        ctx.docker, container, cmd, out, err, read_in, tty=tty, size=size, env=env, gone=gone
    )


def logs(ctx: Context, kind: Kind, name: str, lines: int = 100) -> list[str]:
    _require(ctx, kind, name, f"{kind.name}:logs")
    container = container_of(ctx, kind, name)
    if container is None:
        raise PaasError(f"{kind.name} service {name} has no container right now (the server recreates it)")
    raw = container.logs(tail=max(1, min(lines, 10000)), timestamps=True)
    return raw.decode(errors="replace").splitlines()


# ---------------------------------------------------------------- whole-platform backups (plugins/backup)


def backup_paths(ctx: Context, kind: Kind) -> list[Path]:
    """The records (with their passwords) go into a platform backup; their own backups do not
    (the dump taken with it is newer)."""
    return [_record_path(ctx, kind, r.name) for r in all_records(ctx, kind)]


def dump_all(ctx: Context, kind: Kind, folder: Path, log: BuildLog) -> list[str]:
    """Each service's dump into `folder/<name>.<ext>`, with its sha256 beside it; taken under
    the service's lock (consistent per service). A service whose dump fails fails the backup."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    done = []
    for record in all_records(ctx, kind):
        path = folder / f"{record.name}.{kind.backup_ext}"
        digest = hashlib.sha256()
        log.detail(f"dumping {kind.name} service {record.name}")
        with service_lock(ctx, kind, record.name), open(path, "wb") as fh:

            def write(data: bytes, fh: Any = fh, digest: Any = digest) -> None:
                digest.update(data)
                fh.write(data)

            try:
                _export(ctx, kind, record, write, snapshot=True)
            except PaasError as exc:
                raise PaasError(f"{kind.name} service {record.name}: {exc}") from None
        Path(f"{path}.sha256").write_text(digest.hexdigest() + "\n")
        done.append(record.name)
    return done


def restore_all(ctx: Context, kind: Kind, source: RestoreSource, log: BuildLog) -> str:
    """After a platform restore (the records are back in place) or into a running platform
    (`source.apps`: the services linked to those apps, records taken from the backup, never over
    a service that exists here): each service's container started on a new volume and its dump
    loaded (checksum first). Says what came back; raises naming every service that did not."""
    dumps = source.dumps / kind.name
    if source.whole:
        records = all_records(ctx, kind)
    else:
        records = []
        kept = source.root / names.services_dir(ctx.settings, kind.name).relative_to(ctx.settings.data_dir)
        for folder in sorted(kept.iterdir()) if kept.is_dir() else []:
            try:
                data = json.loads((folder / "service.json").read_text())
                links = [Link(**link) for link in data.pop("links", [])]
                records.append(check_record(Record(**{**data, "links": links}), kind))
            except (OSError, ValueError, TypeError, PaasError):
                continue
    restored, failed = [], []
    for record in records:
        if not any(source.includes(a) for a in record.linked_apps()) and not source.whole:
            continue
        try:
            if not source.whole:  # into this platform: its ids, not the backup's
                record.owner_id = source.user_here(record.owner_id)
                record.links = [
                    Link(link.app, link.alias, source.app_here(link.app, link.app_id))
                    for link in record.links
                    if source.app_here(link.app, link.app_id) is not None
                ]
            _restore_one(ctx, kind, record, dumps, not source.whole, log)
            restored.append(record.name)
        except (PaasError, OSError, docker.errors.DockerException) as exc:
            log.error(f"{kind.name} service {record.name} did not come back: {exc}")
            failed.append(f"{record.name} ({exc})")
    if failed:
        raise PaasError(f"{kind.name} services not restored: {'; '.join(failed)}")
    return f"{len(restored)} service(s) with their data: {', '.join(restored)}" if restored else "no services"


def check_record(record: Record, kind: Kind) -> Record:
    check_name(record.name, kind)
    if record.kind != kind.name:
        raise PaasError(f"{record.name} is a {record.kind} service, not {kind.name}")
    return record


def _restore_one(
    ctx: Context, kind: Kind, record: Record, dumps: Path, into_running: bool, log: BuildLog
) -> None:
    dump = dumps / f"{record.name}.{kind.backup_ext}"
    wanted = Path(f"{dump}.sha256").read_text().strip() if Path(f"{dump}.sha256").is_file() else ""
    digest = hashlib.sha256()
    with open(dump, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if not wanted or digest.hexdigest() != wanted:
        raise PaasError(f"the dump of {record.name} does not match its checksum")
    log.step(f"Restoring {kind.name} service {record.name}")
    with service_lock(ctx, kind, record.name):
        if into_running:
            if load(ctx, kind, record.name) is not None:
                raise Conflict(f"a {kind.name} service {record.name} exists here; not replaced")
            record.last_scheduled = now_iso() if record.schedule else None
            _save(ctx, record)
        # A container there already (the reconcile pass's from the restored record, or one this
        # platform had before --force) may hold another password: a new one on a new volume.
        _remove_container_and_volume(ctx, kind, record.name)
        _start_container(ctx, kind, record, log)
        with open(dump, "rb") as fh:
            _import_locked(ctx, kind, record, fh.read)
        _converge_networks(ctx, kind, record)
    ctx.store.add_event(None, ctx.actor, f"{kind.name}:restore", f"{record.name} (platform backup)")
    log.detail(f"{kind.name} service {record.name}: data loaded ({dump.stat().st_size} bytes)")
