"""The one permission table decides every door (issue 26): every command (SSH and host) and every
public service function is in `paas/services/access.py`, no front end calls a service function the
table marks internal, and each command and each service entry answers every role as the table
says: a refusal is the table's exact words, given before anything changed (the store, the data
folder, the docker engine untouched); an allowed role is never refused. The dashboard's and the
API's routes are driven the same way in tests/web/test_doors_table_web.py.

The roles: anonymous (no user), none (a user without access), view, deploy, operate, manage (each
given alone on `shop`, view included), owner (of `shop`, of the backing service `shopdb` and of the
storage folder `shopdata`) and admin. Every case runs on its own copy of one small world, with a
docker engine that fails on first use (the rules are under test here, not docker).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import pkgutil
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import paas.services
from paas import commands
from paas import server as _server  # noqa: F401 (registers `paas server`, as paas.cli does)
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import NotFound, PermissionDenied
from paas.plugins import plugins
from paas.services import (
    access,
    apps,
    builders,
    checks,
    config,
    doctor,
    domains,
    events,
    formation,
    gc,
    git,
    jobs,
    keys,
    logs,
    lookup,
    metrics,
    moves,
    oneoff,
    overview,
    processes,
    properties,
    push,
    quotas,
    releases,
    repo,
    resources,
    routing,
    sources,
    users,
)
from paas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
PG = importlib.import_module("paas_plugins.datastores.postgres").KIND
backing = importlib.import_module("paas_plugins.datastores.service")
storage = importlib.import_module("paas_plugins.storage.service")
backup = importlib.import_module("paas_plugins.backup.service")
certs = importlib.import_module("paas_plugins.certs.service")
letsencrypt = importlib.import_module("paas_plugins.certs.letsencrypt")
cron = importlib.import_module("paas_plugins.cron.service")
maintenance = importlib.import_module("paas_plugins.maintenance.service")
app_metrics = importlib.import_module("paas_plugins.metrics.service")
notifications = importlib.import_module("paas_plugins.notifications.service")
review = importlib.import_module("paas_plugins.review_apps.service")
nodes = importlib.import_module("paas_plugins.swarm.nodes")

ROLES = ("anonymous", *access.ROLES)
MARKERS = {access.PURE, access.ASK, access.SIGN_IN, access.INTERNAL, access.JOB}
APP = "shop"
SERVICE = "postgres service 'shopdb'"
FOLDER = "storage directory 'shopdata'"
JOB_OPERATION = "ps:restart"  # what the world's job ran
# A refusal by the table reads like one of these (or is a PermissionDenied).
REFUSED_AS_MISSING = {f"app '{APP}' does not exist", f"{SERVICE} does not exist", f"{FOLDER} does not exist"}


# ---------------------------------------------------------------- the world


class EngineUsed(Exception):
    """The fake docker engine was asked for something (not a PaasError: nothing catches it)."""


class Engine:
    """A docker client that records and refuses every use."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        raise EngineUsed(name)


@dataclass
class World:
    root: Path  # the data dir of the template; each case copies it
    job: str
    backup: str
    public_key: str


def _wait_job(ctx: Context, job_id: str) -> None:
    deadline = time.monotonic() + 10
    while not jobs.get(ctx, APP, job_id).done:
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("world")
    host = Context.open(Settings(data_dir=base / "data"), actor="host", is_admin=True, on_host=True)
    host._extra["docker"] = Engine()
    for name in access.ROLES:
        host.store.add_user(name, "", name == "admin", "2026-01-01T00:00:00Z")
    owner = _as(host, "owner")
    apps.create_app(owner, APP)
    for perm in access.PERMISSIONS:
        access.add_access(owner, APP, perm, perm)
    app = host.store.get_app(APP)
    build = host.store.create_build(app.id, "a" * 40, "owner")
    host.store.finish_build(build, "succeeded", "-----> built", "paas/app-shop:1", {"web": "x"}, "python")
    for what in ("Deploy aaaaaaa", "Set SECRET"):
        release = host.store.create_release(app.id, build, {"SECRET": "s3cret"}, {"web": 1}, what, "owner")
        host.store.set_release_status(release.id, "succeeded")
    host.store.replace_config(app.id, {"SECRET": "s3cret"})
    host.store.set_formation(app.id, {"web": 1})
    host.store.replace_domains(app.id, ["www.shop.example"])
    # the owner's backing service, with one backup of hers
    owner_id = host.store.get_user("owner").id
    record = backing.Record("postgres", "shopdb", "pw" * 24, backing.now_iso(), owner_id=owner_id)
    backing._save(host, record)
    cache = backing.Record("redis", "shopcache", "pw" * 24, backing.now_iso(), owner_id=owner_id)
    backing._save(host, cache)
    backup_id = "shopdb-20260101T000000Z.dump"
    folder = backing._backups_dir(host, PG, "shopdb")
    folder.mkdir(parents=True)
    (folder / backup_id).write_bytes(b"PGDMP")
    (folder / f"{backup_id}.json").write_text(f'{{"sha256": "x", "owner_id": {owner_id}}}')
    storage.ensure_directory(owner, "shopdata")  # the owner's storage folder
    key = base / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    other = base / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    keys.add_key(host, "owner", (base / "key.pub").read_text())
    job = jobs.start(host, APP, JOB_OPERATION, "Restart", lambda log: "restarted")
    _wait_job(host, job.id)
    host.store.close()
    return World(base / "data", job.id, backup_id, (base / "other.pub").read_text())


def _as(ctx: Context, role: str) -> Context:
    if role == "anonymous":
        return ctx.for_actor(None, False)
    user = ctx.store.get_user(role)
    assert user is not None
    return ctx.for_actor(user.name, user.is_admin, user_id=user.id)


@dataclass
class Case:
    ctx: Context  # as the role
    host: Context  # as root, for looking
    engine: Engine


def _case(world: World, where: Path, role: str) -> Case:
    data = where / "data"
    shutil.copytree(world.root, data, symlinks=True)
    host = Context.open(Settings(data_dir=data), actor="host", is_admin=True, on_host=True)
    engine = Engine()
    host._extra["docker"] = engine
    return Case(_as(host, role), host, engine)


SIGN_IN_TABLES = ("api_tokens", "web_sessions", "login_failures")  # who asks, not what they may do


def _state(case: Case, besides: tuple[str, ...] = ()) -> tuple:
    """Everything a refused call must leave as it was: every table (events but the denials; not
    `besides`), and every file of the data dir but the locks and the database's own."""
    conn = sqlite3.connect(str(case.host.settings.db_path))
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = []
    for table in sorted(set(tables) - set(besides)):
        where = " WHERE action != 'access:denied'" if table == "events" else ""
        rows.append((table, conn.execute(f"SELECT * FROM {table}{where} ORDER BY 1").fetchall()))  # noqa: S608
    conn.close()
    data = case.host.settings.data_dir
    files = sorted(
        (str(p.relative_to(data)), p.stat().st_size if p.is_file() else -1)
        for p in data.rglob("*")
        if p.parts[len(data.parts)] not in ("locks",) and not p.name.startswith("paas.db")
    )
    return tuple(rows), tuple(files)


# ---------------------------------------------------------------- what each role is told


@dataclass
class Call:
    """One call of a service function, and what names the table's rule looks at."""

    run: Callable[[Context, World], Any]
    operation: str | None = None  # default: the function's entry in access.ENTRIES
    app: bool = True  # names `shop` (for an operation of OPERATIONS)
    owned: str | None = None  # names the owner's service or folder (an OWNED operation)
    refusals: dict[str, str] | None = None  # for an APP_LESS operation: who is refused, and how
    admin_what: str | None = None  # the words of an admin-only refusal, if not "run <operation>"
    label: str = ""


def refusal(role: str, operation: str, call: Call) -> str | None:
    """The words the table gives `role` for this call (None: allowed)."""
    if call.refusals is not None:
        return call.refusals.get(role)
    if call.admin_what is not None or operation in access.ADMIN_ONLY:
        return None if role == "admin" else f"only an admin may {call.admin_what or 'run ' + operation}"
    if operation in access.OPERATIONS and call.app:
        needed = access.OPERATIONS[operation]
        if role in ("anonymous", "none"):
            return f"app '{APP}' does not exist"
        if role not in ("owner", "admin") and needed not in ("view", role):
            return f"you need the '{needed}' permission on '{APP}'"
    if call.owned is not None and role not in ("owner", "admin"):
        return f"{call.owned} does not exist"
    return None


def B() -> BuildLog:
    return BuildLog()


NOT_ADMIN = {r: "only an admin may create postgres services here (PAAS_SERVICE_CREATE=admins)" for r in ROLES}
NOT_ADMIN.pop("admin")

CALLS: dict[str, list[Call]] = {
    "access.list_access": [Call(lambda c, w: access.list_access(c, APP))],
    "access.add_access": [Call(lambda c, w: access.add_access(c, APP, "none", "view"))],
    "access.update_access": [Call(lambda c, w: access.update_access(c, APP, "view", "view,deploy"))],
    "access.remove_access": [Call(lambda c, w: access.remove_access(c, APP, "view"))],
    "apps.transfer": [Call(lambda c, w: apps.transfer(c, APP, "view"))],
    "apps.create_app": [
        Call(
            lambda c, w: apps.create_app(c, "fresh"),
            refusals={"anonymous": "only a user of this server may run apps:create"},
        )
    ],
    "apps.ensure_app": [Call(lambda c, w: apps.ensure_app(c, APP))],
    "apps.app_info": [Call(lambda c, w: apps.app_info(c, APP))],
    "apps.rename_app": [Call(lambda c, w: apps.rename_app(c, APP, "shop2"))],
    "apps.destroy_app": [Call(lambda c, w: apps.destroy_app(c, APP, APP))],
    "datastores.service.create": [Call(lambda c, w: backing.create(c, PG, "newdb", B()), refusals=NOT_ADMIN)],
    "datastores.service.destroy": [
        Call(lambda c, w: backing.destroy(c, PG, "shopdb", "shopdb", True, B()), owned=SERVICE)
    ],
    "datastores.service.list_services": [Call(lambda c, w: backing.list_services(c, PG), refusals={})],
    "datastores.service.info": [Call(lambda c, w: backing.info(c, PG, "shopdb"), owned=SERVICE)],
    "datastores.service.links_of_app": [Call(lambda c, w: backing.links_of_app(c, [PG], APP))],
    "datastores.service.link": [
        Call(lambda c, w: backing.link(c, PG, "shopdb", APP, None, B()), owned=SERVICE)
    ],
    "datastores.service.unlink": [
        Call(lambda c, w: backing.unlink(c, PG, "shopdb", APP, B()), owned=SERVICE)
    ],
    "datastores.service.set_schedule": [
        Call(lambda c, w: backing.set_schedule(c, PG, "shopdb", "0 3 * * *", 2), owned=SERVICE)
    ],
    "datastores.service.export": [
        Call(lambda c, w: backing.export(c, PG, "shopdb", lambda b: None), owned=SERVICE)
    ],
    "datastores.service.import_": [
        Call(lambda c, w: backing.import_(c, PG, "shopdb", lambda n: b""), owned=SERVICE)
    ],
    "datastores.service.backup": [Call(lambda c, w: backing.backup(c, PG, "shopdb"), owned=SERVICE)],
    "datastores.service.list_backups": [
        Call(lambda c, w: backing.list_backups(c, PG, "shopdb"), owned=SERVICE)
    ],
    "datastores.service.backup_path": [
        Call(
            lambda c, w: backing.backup_path(c, PG, "shopdb", w.backup),
            refusals={
                r: "postgres service shopdb has no backup shopdb-20260101T000000Z.dump"
                for r in ROLES
                if r not in ("owner", "admin")
            },
        )
    ],
    "datastores.service.restore": [
        Call(lambda c, w: backing.restore(c, PG, "shopdb", w.backup), owned=SERVICE)
    ],
    "datastores.service.connect": [
        Call(
            lambda c, w: backing.connect(
                c, PG, "shopdb", print, print, lambda n: b"", False, None, lambda: True
            ),
            owned=SERVICE,
        )
    ],
    "datastores.service.logs": [Call(lambda c, w: backing.logs(c, PG, "shopdb"), owned=SERVICE)],
    "checks.set_checks": [Call(lambda c, w: checks.set_checks(c, APP, ["web"], "enabled"))],
    "checks.run_now": [Call(lambda c, w: checks.run_now(c, APP, ["web"], B()))],
    "checks.report": [Call(lambda c, w: checks.report(c, APP))],
    "config.get_config": [Call(lambda c, w: config.get_config(c, APP))],
    "config.get_value": [Call(lambda c, w: config.get_value(c, APP, "SECRET"))],
    "config.set_config": [Call(lambda c, w: config.set_config(c, APP, {"K": "v"}, B(), restart=False))],
    "config.unset_config": [Call(lambda c, w: config.unset_config(c, APP, ["SECRET"], B(), restart=False))],
    "config.update_config": [
        Call(lambda c, w: config.update_config(c, APP, {"K": "v"}, [], B(), restart=False))
    ],
    "doctor.report": [Call(lambda c, w: doctor.report(c))],
    "doctor.fix": [Call(lambda c, w: doctor.fix(c, doctor.Report()))],
    "domains.list_domains": [Call(lambda c, w: domains.list_domains(c, APP))],
    "domains.add_domains": [Call(lambda c, w: domains.add_domains(c, APP, ["new.example.com"]))],
    "domains.remove_domains": [Call(lambda c, w: domains.remove_domains(c, APP, ["www.shop.example"]))],
    "domains.set_domains": [Call(lambda c, w: domains.set_domains(c, APP, ["a.example.com"]))],
    "domains.clear_domains": [Call(lambda c, w: domains.clear_domains(c, APP))],
    "events.list_events": [
        Call(lambda c, w: events.list_events(c, 10, APP)),
        Call(lambda c, w: events.list_events(c, 10), refusals={}, label="of every app one may view"),
    ],
    "formation.get_formation": [Call(lambda c, w: formation.get_formation(c, APP))],
    "formation.scale": [Call(lambda c, w: formation.scale(c, APP, {"web": 2}, B()))],
    "jobs.start": [
        Call(
            lambda c, w: jobs.start(c, APP, JOB_OPERATION, "Restart", lambda log: "ok"),
            operation=JOB_OPERATION,
        )
    ],
    "jobs.get": [Call(lambda c, w: jobs.get(c, APP, w.job), operation=JOB_OPERATION)],
    "jobs.output": [Call(lambda c, w: jobs.output(c, APP, w.job), operation=JOB_OPERATION)],
    "jobs.follow": [
        Call(lambda c, w: list(jobs.follow(c, APP, w.job, 0, lambda: True)), operation=JOB_OPERATION)
    ],
    "keys.add_key": [Call(lambda c, w: keys.add_key(c, "newcomer", w.public_key))],
    "keys.list_keys": [Call(lambda c, w: keys.list_keys(c), refusals={})],
    "keys.remove_key": [Call(lambda c, w: keys.remove_key(c, "owner"))],
    "logs.check": [Call(lambda c, w: logs.check(c, APP, 10, None))],
    "logs.recent": [Call(lambda c, w: logs.recent(c, APP, 10))],
    "logs.follow": [Call(lambda c, w: logs.follow(c, APP, print, lambda: True, 10))],
    "logs.build_output": [Call(lambda c, w: logs.build_output(c, APP, "v1"))],
    "lookup.get_app": [Call(lambda c, w: lookup.get_app(c, APP))],
    "lookup.list_apps": [Call(lambda c, w: lookup.list_apps(c), refusals={})],
    "lookup.app_urls": [Call(lambda c, w: lookup.app_urls(c, APP))],
    "metrics.sample": [Call(lambda c, w: metrics.sample(c, APP))],
    "metrics.current": [Call(lambda c, w: metrics.current(c, APP))],
    "metrics.history": [Call(lambda c, w: metrics.history(c, APP))],
    "moves.set_scheduler": [Call(lambda c, w: moves.set_scheduler(c, APP, "docker-local", B()))],
    "swarm.nodes.list_nodes": [Call(lambda c, w: nodes.list_nodes(c))],
    "swarm.nodes.join_command": [Call(lambda c, w: nodes.join_command(c, "node1"))],
    "swarm.nodes.drain": [Call(lambda c, w: nodes.drain(c, "node1"))],
    "swarm.nodes.activate": [Call(lambda c, w: nodes.activate(c, "node1"))],
    "swarm.nodes.remove": [Call(lambda c, w: nodes.remove(c, "node1"))],
    "oneoff.create_oneoff": [Call(lambda c, w: oneoff.create_oneoff(c, APP, "echo hi", False))],
    "oneoff.start_detached": [Call(lambda c, w: oneoff.start_detached(c, APP, "echo hi"))],
    "oneoff.enter": [Call(lambda c, w: oneoff.enter(c, APP, None, ["sh"], False))],
    "overview.summaries": [Call(lambda c, w: overview.summaries(c), refusals={})],
    "overview.summary": [Call(lambda c, w: overview.summary(c, APP))],
    "processes.list_processes": [Call(lambda c, w: processes.list_processes(c, APP))],
    "processes.restart": [Call(lambda c, w: processes.restart(c, APP, None, B()))],
    "processes.stop": [Call(lambda c, w: processes.stop(c, APP, B()))],
    "processes.start": [Call(lambda c, w: processes.start(c, APP, B()))],
    "push.deploy_push": [Call(lambda c, w: push.deploy_push(c, APP, None, "b" * 40, B()))],  # type: ignore[arg-type]
    "push.rebuild": [Call(lambda c, w: push.rebuild(c, APP, B()))],
    "push.redeploy_current": [
        Call(lambda c, w: push.redeploy_current(c, APP, B()), admin_what="rebuild an app from a backup")
    ],
    "push.deploy_branch_hint": [Call(lambda c, w: push.deploy_branch_hint(c, APP, "feature"))],
    "push.push_branch": [
        Call(lambda c, w: push.push_branch(c, APP, b"refs/heads/feature", None, "b" * 40, None, B()))  # type: ignore[arg-type]
    ],
    "releases.list_releases": [Call(lambda c, w: releases.list_releases(c, APP))],
    "releases.release_info": [Call(lambda c, w: releases.release_info(c, APP, "v1"))],
    "releases.rollback": [Call(lambda c, w: releases.rollback(c, APP, "v1", B()))],
    "repo.purge_cache": [Call(lambda c, w: repo.purge_cache(c, APP))],
    "repo.gc": [Call(lambda c, w: repo.gc(c, APP))],
    "gc.cleanup": [
        Call(lambda c, w: gc.cleanup(c, APP)),
        Call(lambda c, w: gc.cleanup(c, None), admin_what="clean up every app: name one", label="every app"),
    ],
    "properties.set_value": [
        Call(lambda c, w: properties.set_value(c, "git", APP, "deploy-branch", "main")),
        Call(
            lambda c, w: properties.set_value(c, "git", None, "deploy-branch", "main"),
            admin_what="set global git properties",
            label="server-wide",
        ),
    ],
    "properties.report": [
        Call(lambda c, w: properties.report(c, "git", APP)),
        Call(lambda c, w: properties.report(c, "git", None), refusals={}, label="server-wide"),
    ],
    "properties.report_all": [Call(lambda c, w: properties.report_all(c, "git"), refusals={})],
    "git.deploy_branches": [Call(lambda c, w: git.deploy_branches(c, APP))],
    "builders.add": [Call(lambda c, w: builders.add(c, APP, "heroku/nodejs"))],
    "builders.set_": [Call(lambda c, w: builders.set_(c, APP, "heroku/nodejs"))],
    "builders.remove": [Call(lambda c, w: builders.remove(c, APP, "heroku/nodejs"))],
    "builders.clear": [Call(lambda c, w: builders.clear(c, APP))],
    "builders.listed": [Call(lambda c, w: builders.listed(c, APP))],
    "sources.from_archive": [
        Call(lambda c, w: sources.from_archive(c, APP, io.BytesIO(b"not a tar"), None, "tar", B()))
    ],
    "sources.from_image": [Call(lambda c, w: sources.from_image(c, APP, "alpine:3", B()))],
    "resources.set_limits": [Call(lambda c, w: resources.set_limits(c, APP, None, "256m", None, None, B()))],
    "resources.clear_limits": [Call(lambda c, w: resources.clear_limits(c, APP, None, B()))],
    "resources.report": [Call(lambda c, w: resources.report(c, APP))],
    "routing.stop_router": [Call(lambda c, w: routing.stop_router(c))],
    "quotas.report": [Call(lambda c, w: quotas.report(c))],
    "quotas.set_quotas": [Call(lambda c, w: quotas.set_quotas(c, "view", ["apps=5"]))],
    "users.add_user": [Call(lambda c, w: users.add_user(c, "eve", None))],
    "users.list_users": [Call(lambda c, w: users.list_users(c))],
    "users.list_accounts": [Call(lambda c, w: users.list_accounts(c))],
    "users.set_admin": [Call(lambda c, w: users.set_admin(c, "view", True))],
    "users.remove_user": [Call(lambda c, w: users.remove_user(c, "view"))],
    "users.set_password": [Call(lambda c, w: users.set_password(c, "view", "a long password"))],
    "users.create_token": [Call(lambda c, w: users.create_token(c, "view"))],
    "users.list_tokens": [Call(lambda c, w: users.list_tokens(c))],
    "users.revoke_token": [Call(lambda c, w: users.revoke_token(c, 1))],
    "certs.letsencrypt.enable": [Call(lambda c, w: letsencrypt.enable(c, APP))],
    "certs.letsencrypt.disable": [Call(lambda c, w: letsencrypt.disable(c, APP))],
    "certs.letsencrypt.auto_renew": [
        Call(lambda c, w: letsencrypt.auto_renew(c, APP)),
        Call(
            lambda c, w: letsencrypt.auto_renew(c, None),
            admin_what="run letsencrypt:auto-renew without an app",
            label="every certificate",
        ),
    ],
    "certs.service.add": [
        Call(lambda c, w: certs.add(c, APP, b"x", b"y", False)),
        Call(
            lambda c, w: certs.add(c, "paas", b"x", b"y", False),
            admin_what="run certs:add for the dashboard",
            label="the dashboard's",
        ),
    ],
    "certs.service.generate": [Call(lambda c, w: certs.generate(c, APP))],
    "certs.service.remove": [Call(lambda c, w: certs.remove(c, APP))],
    "certs.service.set_flag": [Call(lambda c, w: certs.set_flag(c, APP, certs.S_REDIRECT, False))],
    "certs.service.report": [
        Call(lambda c, w: certs.report(c, APP)),
        Call(
            lambda c, w: certs.report(c, "paas"),
            admin_what="run certs:report for the dashboard",
            label="the dashboard's",
        ),
    ],
    "certs.service.reports": [Call(lambda c, w: certs.reports(c), refusals={})],
    "cron.service.list_jobs": [Call(lambda c, w: cron.list_jobs(c, APP))],
    "cron.service.run_now": [Call(lambda c, w: cron.run_now(c, APP, "nosuch", print))],
    "maintenance.service.report": [
        Call(lambda c, w: maintenance.report(c, APP)),
        Call(lambda c, w: maintenance.report(c), refusals={}, label="of every app one may view"),
    ],
    "metrics.service.report": [Call(lambda c, w: app_metrics.report(c, APP, "1h"))],
    "metrics.service.watch_report": [Call(lambda c, w: app_metrics.watch_report(c, APP))],
    "metrics.service.set_watch": [Call(lambda c, w: app_metrics.set_watch(c, APP, {"window": 60}))],
    "metrics.service.prometheus_text": [Call(lambda c, w: app_metrics.prometheus_text(c))],
    # a TEST-NET address: no lookup, refused to non-admins (after the table's check) as private
    "notifications.service.add": [
        Call(lambda c, w: notifications.add(c, APP, "http://192.0.2.1/hook", None, False)),
        Call(
            lambda c, w: notifications.add(c, None, "http://192.0.2.1/hook", None, False),
            admin_what="run notifications:add --all",
            label="platform-wide",
        ),
    ],
    "notifications.service.list_hooks": [
        Call(lambda c, w: notifications.list_hooks(c, APP)),
        Call(
            lambda c, w: notifications.list_hooks(c, None),
            admin_what="run notifications:list --all",
            label="platform-wide",
        ),
    ],
    "notifications.service.remove": [Call(lambda c, w: notifications.remove(c, APP, 999))],
    "notifications.service.log": [Call(lambda c, w: notifications.log(c, APP))],
    "notifications.service.test": [Call(lambda c, w: notifications.test(c, APP, None))],
    "maintenance.service.enable": [Call(lambda c, w: maintenance.enable(c, APP))],
    "maintenance.service.disable": [Call(lambda c, w: maintenance.disable(c, APP))],
    "review_apps.service.enable": [Call(lambda c, w: review.enable(c, APP, 3))],
    "review_apps.service.disable": [Call(lambda c, w: review.disable(c, APP))],
    "review_apps.service.report": [Call(lambda c, w: review.report(c, APP))],
    "review_apps.service.destroy": [Call(lambda c, w: review.destroy(c, APP, B()))],
    "storage.service.ensure_directory": [
        Call(lambda c, w: storage.ensure_directory(c, "newdir", APP)),
        Call(
            lambda c, w: storage.ensure_directory(c, "newdir"),
            refusals={"anonymous": "only a user of this server may run storage:ensure-directory"},
            label="of one's own",
        ),
    ],
    "storage.service.mounts_of": [Call(lambda c, w: storage.mounts_of(c, APP))],
    # a target that is no target: an admin passes the check and is refused just after it
    "backup.service.create": [Call(lambda c, w: backup.create(c, "relative", B()))],
    "backup.service.list_backups": [Call(lambda c, w: backup.list_backups(c, "relative"))],
    "backup.service.verify": [Call(lambda c, w: backup.verify(c, "latest", "relative", B()))],
    "backup.service.restore": [
        Call(lambda c, w: backup.restore(c, "latest", "relative", False, None, B())),
        Call(
            lambda c, w: backup.restore(c, "latest", "relative", True, APP, B()),
            label="one app, --force",
        ),
    ],
    "backup.service.schedule": [
        Call(lambda c, w: backup.schedule(c, None, None, None)),
        Call(
            lambda c, w: backup.schedule(c, "0 3 * * *", 2, "relative"),
            label="set",
        ),
    ],
    "storage.service.mount": [
        Call(lambda c, w: storage.mount(c, APP, f"{c.settings.storage_dir}/shopdata:/data"), owned=FOLDER)
    ],
    "storage.service.unmount": [
        Call(lambda c, w: storage.unmount(c, APP, f"{c.settings.storage_dir}/shopdata:/data"))
    ],
}


# ---------------------------------------------------------------- every door is in the table


def _service_modules() -> dict[str, object]:
    """`config` -> paas.services.config, `certs.service` -> paas_plugins.certs.service: every
    module of the service layer, the built-in plugins' included (not their commands or hooks)."""
    found: dict[str, object] = {}
    for info in pkgutil.iter_modules(paas.services.__path__):
        found[info.name] = importlib.import_module(f"paas.services.{info.name}")
    for folder in sorted((ROOT / "plugins").iterdir()):
        if not (folder / "__init__.py").is_file():
            continue
        for path in sorted(folder.glob("*.py")):
            if path.stem not in ("__init__", "commands"):
                found[f"{folder.name}.{path.stem}"] = importlib.import_module(
                    f"paas_plugins.{folder.name}.{path.stem}"
                )
    return found


def _public_functions() -> dict[str, Callable]:
    out = {}
    for key, module in _service_modules().items():
        for name, fn in vars(module).items():
            if not name.startswith("_") and inspect.isfunction(fn) and fn.__module__ == module.__name__:
                out[f"{key}.{name}"] = fn
    return out


def _entries() -> dict[str, str]:
    return {
        f"{module}.{name}": what for module, names in access.ENTRIES.items() for name, what in names.items()
    }


def test_every_service_function_is_in_the_table() -> None:
    functions, table = _public_functions(), _entries()
    missing = sorted(set(functions) - set(table))
    assert missing == [], f"say what each is in access.ENTRIES (a plugin's: declare_entries): {missing}"
    assert sorted(set(table) - set(functions)) == [], "access.ENTRIES names functions that are gone"
    unknown = sorted(f"{k}: {v}" for k, v in table.items() if v not in MARKERS and not access.known(v))
    assert unknown == [], f"not operations of the table: {unknown}"


def test_every_entry_is_driven() -> None:
    entries = {k for k, v in _entries().items() if v not in MARKERS or v == access.JOB}
    assert sorted(entries - set(CALLS)) == [], "give each new service entry its CALLS"
    assert sorted(set(CALLS) - entries) == []


def test_every_command_is_in_the_table(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), actor="host", is_admin=True, on_host=True)
    registered = commands.available(True, ctx.plugins)
    missing = sorted(n for n in registered if not access.known(n))
    assert missing == [], f"give these commands a rule (a plugin: define(permission=...)): {missing}"
    assert set(access.OPERATIONS.values()) <= {*access.PERMISSIONS, access.OWNER}
    used = {*registered, *_entries().values(), *access.ROUTES.values()}
    stale = sorted(n for n in {*access.APP_LESS, *access.ADMIN_ONLY, *access.OWNED} if n not in used)
    assert stale == [], f"rules for what no command, route or function is: {stale}"
    assert sorted(set(COMMAND_ARGV) ^ set(registered)) == [], "give each new command its COMMAND_ARGV"


FRONT_ENDS = [
    *sorted((ROOT / "paas" / "web").glob("*.py")),
    *sorted((ROOT / "paas" / "commands").glob("*.py")),
    *sorted((ROOT / "plugins").glob("*/commands.py")),
    *sorted((ROOT / "paas" / "git_receiver").glob("*.py")),
    ROOT / "paas" / "cli.py",
]


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ["paas_plugins", *rel.parts[1:]] if rel.parts[0] == "plugins" else list(rel.parts)
    return ".".join(p for p in parts if p != "__init__")


def _service_key(module: str) -> str | None:
    if module.startswith("paas.services."):
        return module.removeprefix("paas.services.")
    if module.startswith("paas_plugins.") and module.count(".") == 2:
        return module.removeprefix("paas_plugins.")
    return None


def _calls_into_services(path: Path) -> set[str]:
    """`config.set_config`, ... : every service function a front-end module names."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    modules: dict[str, str] = {}  # local name -> service module key
    functions: dict[str, str] = {}  # local name -> service function key
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                local = alias.asname or alias.name
                if (key := _service_key(f"{base}.{alias.name}")) is not None:
                    modules[local] = key
                elif (key := _service_key(base)) is not None:
                    functions[local] = f"{key}.{alias.name}"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.add(f"{modules[node.value.id]}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in functions:
            found.add(functions[node.id])
    return found


def test_front_ends_call_no_internal_service_function() -> None:
    """SSH and host commands, the dashboard, the API and the git receiver only reach the service
    layer through functions that check the table (or need no check): a new page, route or
    command that calls an internal one (no check of its own) fails here."""
    table, functions = _entries(), _public_functions()
    wrong = []
    for path in FRONT_ENDS:
        for name in sorted(_calls_into_services(path)):
            if name in functions and table.get(name) == access.INTERNAL:
                wrong.append(f"{path.relative_to(ROOT)}: {name}")
    assert wrong == [], "front ends calling internal service functions:\n" + "\n".join(wrong)
    assert "config.set_config" in _calls_into_services(ROOT / "paas" / "web" / "pages.py")  # the scan sees


# ---------------------------------------------------------------- each service entry, each role


def _check_refused(case: Case, call: Call, world: World, expected: str, before: tuple) -> str | None:
    try:
        call.run(case.ctx, world)
    except (NotFound, PermissionDenied) as exc:
        if str(exc) != expected:
            return f"told {exc!r}, the table says {expected!r}"
    except Exception as exc:  # noqa: BLE001 - any other outcome is the failure reported
        return f"not refused ({exc.__class__.__name__}: {exc}); the table says {expected!r}"
    else:
        return f"not refused; the table says {expected!r}"
    if case.engine.used:
        return f"refused only after using the docker engine ({case.engine.used})"
    if _state(case) != before:
        return "refused only after changing something"
    return None


def _check_allowed(case: Case, call: Call, world: World) -> str | None:
    try:
        call.run(case.ctx, world)
    except PermissionDenied as exc:
        return f"refused: {exc}"
    except NotFound as exc:
        if str(exc) in REFUSED_AS_MISSING:
            return f"refused: {exc}"
    except Exception:  # noqa: BLE001, S110 - allowed: what happens next is another test's business
        pass
    return None


@pytest.mark.parametrize("entry", sorted(CALLS))
def test_each_service_entry_answers_every_role_as_the_table_says(
    world: World, tmp_path: Path, entry: str
) -> None:
    wrong = []
    for n, call in enumerate(CALLS[entry]):
        operation = call.operation or _entries()[entry]
        what = f"{entry}{' (' + call.label + ')' if call.label else ''}"
        denied = {r: refusal(r, operation, call) for r in ROLES}
        shared = None  # the refused roles share one copy: none of them may change it
        for role in ROLES:
            expected = denied[role]
            if expected is not None:
                if shared is None:
                    shared = _case(world, tmp_path / f"{n}-refused", "admin")
                case = Case(_as(shared.host, role), shared.host, shared.engine)
                problem = _check_refused(case, call, world, expected, _state(shared))
            else:
                problem = _check_allowed(_case(world, tmp_path / f"{n}-{role}", role), call, world)
            if problem:
                wrong.append(f"{what} as {role}: {problem}")
    assert wrong == [], "\n".join(wrong)


# ---------------------------------------------------------------- each command, each role

# What each command is run with ({folder}: the storage dir); the arguments pass the command's own
# parsing, and where a command would change something lasting they fail just after the check.
COMMAND_ARGV: dict[str, list[str]] = {
    "access": ["access", APP],
    "access:add": ["access:add", APP, "nosuchuser"],
    "access:remove": ["access:remove", APP, "nosuchuser"],
    "access:update": ["access:update", APP, "nosuchuser", "--permissions", "view"],
    "apps:create": ["apps:create", "Not_A_Name"],
    "apps:destroy": ["apps:destroy", APP],
    "apps:exists": ["apps:exists", APP],
    "apps:info": ["apps:info", APP],
    "apps:list": ["apps:list"],
    "apps:rename": ["apps:rename", APP, "Not_A_Name"],
    "apps:report": ["apps:report", APP],
    "apps:scale": ["apps:scale", APP, "nosuchtype=1"],
    "apps:transfer": ["apps:transfer", APP, "nosuchuser"],
    "builds:output": ["builds:output", APP],
    "backup:create": ["backup:create", "--to", "relative"],
    "backup:list": ["backup:list", "--from", "relative"],
    "backup:restore": ["backup:restore", "latest", "--from", "relative"],
    "backup:schedule": ["backup:schedule"],
    "backup:verify": ["backup:verify", "latest", "--from", "relative"],
    "certs:add": ["certs:add", APP],
    "certs:generate": ["certs:generate", "nosuch-app-x"],
    "certs:hsts": ["certs:hsts", APP, "on"],
    "certs:redirect": ["certs:redirect", APP, "on"],
    "certs:remove": ["certs:remove", APP],
    "certs:report": ["certs:report", APP],
    "certs:update": ["certs:update", APP],
    "checks:disable": ["checks:disable", APP, "nosuchtype"],
    "checks:set": ["checks:set", APP, "nosuchkey", "1"],
    "checks:enable": ["checks:enable", APP, "nosuchtype"],
    "checks:report": ["checks:report", APP],
    "checks:run": ["checks:run", APP, "nosuchtype"],
    "checks:skip": ["checks:skip", APP, "nosuchtype"],
    "cleanup": ["cleanup", APP],
    "git:from-archive": ["git:from-archive", APP, "ftp://nowhere/x.tar"],
    "git:from-image": ["git:from-image", APP, "Not_An_Image"],
    "git:report": ["git:report", APP],
    "git:set": ["git:set", APP, "nosuchkey", "1"],
    "builder:report": ["builder:report", APP],
    "builder:set": ["builder:set", APP, "selected", "nope"],
    "builder-herokuish:report": ["builder-herokuish:report", APP],
    "builder-herokuish:set": ["builder-herokuish:set", APP, "allowed", "maybe"],
    "app-json:report": ["app-json:report", APP],
    "app-json:set": ["app-json:set", APP, "appjson-path", "/not/relative"],
    "buildpacks:add": ["buildpacks:add", APP, "not-a-buildpack"],
    "buildpacks:clear": ["buildpacks:clear", APP],
    "buildpacks:list": ["buildpacks:list", APP],
    "buildpacks:remove": ["buildpacks:remove", APP, "heroku/nosuch"],
    "buildpacks:report": ["buildpacks:report", APP],
    "buildpacks:set": ["buildpacks:set", APP, "not-a-buildpack"],
    "nginx:report": ["nginx:report", APP],
    "nginx:set": ["nginx:set", APP, "client-max-body-size", "lots"],
    "repo:gc": ["repo:gc", APP],
    "version": ["version"],
    "config": ["config", APP],
    "config:clear": ["config:clear", APP, "--no-restart"],
    "config:export": ["config:export", APP],
    "config:get": ["config:get", APP, "NO_SUCH_KEY"],
    "config:keys": ["config:keys", APP],
    "config:set": ["config:set", APP, "--no-restart", "TEAM=1"],
    "config:show": ["config:show", APP],
    "config:unset": ["config:unset", APP, "--no-restart", "NO_SUCH_KEY"],
    "cron:list": ["cron:list", APP],
    "cron:run": ["cron:run", APP, "nosuchjob"],
    "doctor": ["doctor"],
    "domains": ["domains", APP],
    "domains:add": ["domains:add", APP, "Not A Domain"],
    "domains:clear": ["domains:clear", APP],
    "domains:remove": ["domains:remove", APP, "nosuch.example.com"],
    "domains:report": ["domains:report", APP],
    "domains:set": ["domains:set", APP, "Not A Domain"],
    "enter": ["enter", APP],
    "events": ["events", "--app", APP, "-n", "1"],
    "events:list": ["events:list", "-n", "1"],
    "events:off": ["events:off"],
    "events:on": ["events:on"],
    "help": ["help"],
    "letsencrypt:auto-renew": ["letsencrypt:auto-renew", APP],
    "letsencrypt:disable": ["letsencrypt:disable", APP],
    "letsencrypt:enable": ["letsencrypt:enable", APP],
    "letsencrypt:list": ["letsencrypt:list"],
    "logs": ["logs", APP, "-n", "1"],
    "metrics": ["metrics", APP, "--since", "1h"],
    "checks:watch": ["checks:watch", APP, "--window", "5"],
    "notifications:add": ["notifications:add", APP, "http://192.0.2.1/hook"],
    "notifications:list": ["notifications:list", APP],
    "notifications:remove": ["notifications:remove", APP, "999"],
    "notifications:test": ["notifications:test", APP],
    "notifications:log": ["notifications:log", APP],
    "maintenance:off": ["maintenance:off", APP],
    "maintenance:on": ["maintenance:on", APP],
    "maintenance:report": ["maintenance:report", APP],
    "nodes:activate": ["nodes:activate", "node1"],
    "nodes:drain": ["nodes:drain", "node1"],
    "nodes:join-command": ["nodes:join-command", "node1"],
    "nodes:list": ["nodes:list"],
    "nodes:remove": ["nodes:remove", "node1"],
    "plugins:list": ["plugins:list"],
    "ps": ["ps", APP],
    "ps:rebuild": ["ps:rebuild", APP],
    "ps:report": ["ps:report", APP],
    "ps:restart": ["ps:restart", APP, "nosuchtype"],
    "ps:scale": ["ps:scale", APP, "nosuchtype=1"],
    "quota:report": ["quota:report"],
    "quota:set": ["quota:set", "view", "apps=5"],
    "ps:set": ["ps:set", APP, "nosuchkey", "1"],
    "ps:start": ["ps:start", APP],
    "ps:stop": ["ps:stop", APP],
    "releases": ["releases", APP],
    "releases:info": ["releases:info", APP, "v1"],
    "releases:rollback": ["releases:rollback", APP, "v99"],
    "repo:purge-cache": ["repo:purge-cache", APP],
    "report": ["report", APP],
    "resource:limit": ["resource:limit", APP, "--memory", "not-a-size"],
    "resource:limit-clear": ["resource:limit-clear", APP],
    "resource:report": ["resource:report", APP],
    "router:stop": ["router:stop"],
    "review-apps:destroy": ["review-apps:destroy", APP],
    "review-apps:disable": ["review-apps:disable", APP],
    "review-apps:enable": ["review-apps:enable", APP, "--stale-days", "soon"],
    "review-apps:list": ["review-apps:list", APP],
    "run": ["run", APP, "true"],
    "run:detached": ["run:detached", APP, "true"],
    "scheduler:report": ["scheduler:report", APP],
    "scheduler:set": ["scheduler:set", APP, "no-such-scheduler"],
    "server": ["server"],
    "ssh-keys:add": ["ssh-keys:add", "newcomer", "/nonexistent.pub"],
    "ssh-keys:list": ["ssh-keys:list"],
    "ssh-keys:remove": ["ssh-keys:remove", "nosuchkey"],
    "stack:build": ["stack:build"],
    "storage:ensure-directory": ["storage:ensure-directory", "Not A Name"],
    "storage:list": ["storage:list", APP],
    "storage:mount": ["storage:mount", APP, "{folder}/shopdata:/data"],
    "storage:unmount": ["storage:unmount", APP, "{folder}/shopdata:/data"],
    "tokens:create": ["tokens:create", "nosuchuser"],
    "tokens:list": ["tokens:list"],
    "tokens:revoke": ["tokens:revoke", "999"],
    "url": ["url", APP],
    "urls": ["urls", APP],
    "users:add": ["users:add", "Not A Name"],
    "users:list": ["users:list"],
    "users:passwd": ["users:passwd", "nosuchuser"],
    "users:remove": ["users:remove", "nosuchuser"],
    **{
        f"{kind}:{verb}": [f"{kind}:{verb}", "shopdb" if kind == "postgres" else "shopcache", *more]
        for kind in ("postgres", "redis")
        for verb, more in {
            "backup": [],
            "backup-schedule": ["every day"],
            "backups": [],
            "connect": [],
            "create": [],
            "destroy": [],
            "export": [],
            "import": [],
            "info": [],
            "logs": [],
            "restore": ["nosuch-20260101T000000Z.dump"],
        }.items()
    },
    "postgres:list": ["postgres:list"],
    "redis:list": ["redis:list"],
    "postgres:link": ["postgres:link", "shopdb", APP],
    "postgres:unlink": ["postgres:unlink", "shopdb", APP],
    "redis:link": ["redis:link", "shopcache", APP],
    "redis:unlink": ["redis:unlink", "shopcache", APP],
}


class Session:
    """An SSH session's byte streams (for connect, export, import): nothing in, nothing kept."""

    pty = None

    def write(self, data: bytes) -> None: ...

    def write_err(self, data: bytes) -> None: ...

    def read(self, n: int) -> bytes:
        return b""

    def disconnected(self) -> bool:
        return True


HOST_ONLY_REPLY = "unknown command {name!r}; run 'help' for the list"


def command_refusal(role: str, name: str, host_only: bool) -> str | None:
    """The line the table (and the SSH door) gives this role for the command (None: allowed)."""
    if host_only:  # not a command over SSH, for anyone: root runs it on the host
        return HOST_ONLY_REPLY.format(name=name)
    argv = COMMAND_ARGV[name]
    kind = name.split(":")[0]
    if name in ("postgres:create", "redis:create"):
        return (
            None
            if role == "admin"
            else f"only an admin may create {kind} services here (PAAS_SERVICE_CREATE=admins)"
        )
    if name == "storage:ensure-directory" or name in access.APP_LESS and APP not in argv:
        return None
    owned = None
    if name in access.OWNED:
        owned = {"storage": FOLDER, "postgres": SERVICE, "redis": "redis service 'shopcache'"}[kind]
    return refusal(role, name, Call(lambda c, w: None, app=APP in argv, owned=owned))


@pytest.mark.parametrize("name", sorted(COMMAND_ARGV))
def test_each_command_answers_every_role_as_the_table_says(world: World, tmp_path: Path, name: str) -> None:
    """Over SSH (the dispatcher, then the service), as each role: a refused role gets exactly the
    table's line on stderr, status 1 and nothing on stdout, and nothing changed; an allowed one
    is not refused."""
    shared = _case(world, tmp_path / "refused", "admin")
    host_only = commands.available(True, shared.host.plugins)[name].host_only
    argv = [a.format(folder=shared.host.settings.storage_dir) for a in COMMAND_ARGV[name]]
    wrong = []
    for role in ROLES:
        expected = command_refusal(role, name, host_only)
        case = (
            Case(_as(shared.host, role), shared.host, shared.engine)
            if expected is not None
            else _case(world, tmp_path / role, role)
        )
        before = _state(case) if expected is not None else None
        out, err = io.StringIO(), io.StringIO()
        env = commands.CommandEnv(ctx=case.ctx, out=out, err=err, stdio=Session(), disconnected=lambda: True)
        code = commands.dispatch(list(argv), env)
        said = err.getvalue()
        if expected is not None:
            if (code, said, out.getvalue()) != (1, f"error: {expected}\n", ""):
                wrong.append(f"{name} as {role}: wanted {expected!r}, got {code} {said!r} {out.getvalue()!r}")
            elif case.engine.used or _state(case) != before:
                wrong.append(f"{name} as {role}: refused only after changing something or using docker")
        elif "you need the" in said or any(f"error: {m}\n" == said for m in REFUSED_AS_MISSING):
            wrong.append(f"{name} as {role}: refused: {said!r}")
        elif "only an admin may" in said or "only a user of this server" in said:
            wrong.append(f"{name} as {role}: refused: {said!r}")
    assert wrong == [], "\n".join(wrong)
