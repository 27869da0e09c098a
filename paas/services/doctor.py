"""`paas doctor`: is everything answering, how much disk is left and who uses it, what is orphaned.

Orphans are what our names say belongs to an app the store no longer has (a crash half-way
through `apps:destroy`, or a store restored from a backup): app images, build caches, app
networks and app containers of this instance. `--fix` removes them and nothing else.
"""

from __future__ import annotations

import http.client
import re
import socket
import time
from dataclasses import asdict, dataclass, field

import docker

from paas.core import names
from paas.core.context import Context
from paas.services import access, disk, reconcile, routing

ROLES_OF_APPS = (names.ROLE_PROCESS, names.ROLE_RUN, names.ROLE_ONEOFF, names.ROLE_BUILD, "cron")


@dataclass
class Orphan:
    kind: str  # image, volume, network, container
    name: str
    app: str
    size: int = 0


@dataclass
class Report:
    checks: dict[str, str] = field(default_factory=dict)  # what -> "ok" or why not
    disk: list[dict] = field(default_factory=list)
    apps: dict[str, dict] = field(default_factory=dict)  # app -> images, image_bytes, cache_bytes
    orphans: list[Orphan] = field(default_factory=list)
    reconcile: dict = field(default_factory=dict)  # the server's last pass: at, seconds, apps

    def as_json(self) -> dict:
        return {**asdict(self), "orphans": [asdict(o) for o in self.orphans]}


def _connect_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "", "::") else bind


def _http(host: str, port: int, hostname: str, path: str = "/") -> str:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=3)
        conn.request("GET", path, headers={"Host": hostname})
        status = conn.getresponse().status
        conn.close()
        return "ok" if status < 500 else f"HTTP {status}"
    except (OSError, http.client.HTTPException) as exc:
        return f"no answer ({exc.__class__.__name__})"


def _ssh_banner(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            return "ok" if s.recv(64).startswith(b"SSH-2.0-") else "no SSH banner"
    except OSError as exc:
        return f"no answer ({exc.__class__.__name__})"


def _checks(ctx: Context) -> dict[str, str]:
    s = ctx.settings
    out: dict[str, str] = {}
    try:
        ctx.docker.ping()
        out["dockerd"] = "ok"
    except Exception as exc:  # the engine may be down in any way
        out["dockerd"] = f"no answer ({exc.__class__.__name__})"
    router = routing.router(ctx)
    if router.running_pid() is None:
        out["nginx"] = "not running (start paas server)"
    else:
        out["nginx"] = _http(_connect_host(s.http_bind), s.http_port, s.dashboard_host, "/login")
    out["ssh"] = _ssh_banner(_connect_host(s.ssh_bind), s.ssh_port)
    if s.web_port:
        out["dashboard"] = _http(_connect_host(s.web_bind), s.web_port, s.dashboard_host, "/login")
    out["reconcile"] = _reconcile_check(ctx)
    return out


def _reconcile_check(ctx: Context) -> str:
    """Whether the server's reconcile loop still runs: a pass within three intervals (plus
    the time the last one took), as the server records each."""
    last = reconcile.last_pass(ctx)
    if last is None:
        return "no pass recorded (is paas server running?)"
    late = time.time() - float(last.get("at", 0)) - float(last.get("seconds", 0))
    if late > 3 * ctx.settings.reconcile_seconds + 10:
        return f"no pass for {int(late)} s (is paas server running?)"
    return "ok"


_IMAGE = re.compile(r"^paas/app-(?P<app>[a-z][a-z0-9-]*):.*-(?P<instance>[0-9a-f]{10})$")


def _usage(ctx: Context, known: set[str], report: Report) -> None:
    instance = ctx.settings.instance_id
    client = ctx.docker
    df = client.df()
    for app in known:
        report.apps[app] = {"images": 0, "image_bytes": 0, "cache_bytes": 0}
    for image in df.get("Images") or []:
        for tag in image.get("RepoTags") or []:
            m = _IMAGE.match(tag)
            if not m or m["instance"] != instance:
                continue
            if m["app"] in known:
                report.apps[m["app"]]["images"] += 1
                report.apps[m["app"]]["image_bytes"] += int(image.get("Size") or 0)
            else:
                report.orphans.append(Orphan("image", tag, m["app"], int(image.get("Size") or 0)))
    prefix = names.cache_volume(instance, "")
    for volume in df.get("Volumes") or []:
        name = volume.get("Name", "")
        if not name.startswith(prefix):
            continue
        app, size = name[len(prefix) :], int((volume.get("UsageData") or {}).get("Size") or 0)
        if app in known:
            report.apps[app]["cache_bytes"] = size
        else:
            report.orphans.append(Orphan("volume", name, app, max(size, 0)))
    for net in client.networks.list(filters={"label": names.label_filter(instance, role=names.ROLE_NETWORK)}):
        app = (net.attrs.get("Labels") or {}).get(names.LABEL_APP, "")
        if app and app not in known:
            report.orphans.append(Orphan("network", net.name, app))
    for c in client.containers.list(
        all=True, ignore_removed=True, filters={"label": names.label_filter(instance)}
    ):
        app = c.labels.get(names.LABEL_APP, "")
        if app and app not in known and c.labels.get(names.LABEL_ROLE) in ROLES_OF_APPS:
            report.orphans.append(Orphan("container", c.name, app))


def report(ctx: Context) -> Report:
    access.require_admin(ctx, "doctor")
    out = Report(checks=_checks(ctx))
    out.disk = [asdict(s) for s in disk.spaces(ctx)]
    out.reconcile = reconcile.last_pass(ctx) or {}
    if out.checks["dockerd"] == "ok":
        _usage(ctx, {a.name for a in ctx.store.list_apps()}, out)
    return out


def fix(ctx: Context, found: Report) -> list[str]:
    """Remove the orphans found: containers first (they hold networks and images)."""
    access.require_admin(ctx, "doctor")
    client = ctx.docker
    done = []
    order = {"container": 0, "network": 1, "image": 2, "volume": 3}
    for o in sorted(found.orphans, key=lambda o: order[o.kind]):
        try:
            if o.kind == "container":
                client.containers.get(o.name).remove(force=True)
            elif o.kind == "network":
                client.networks.get(o.name).remove()
            elif o.kind == "image":
                client.images.remove(o.name, force=True)
            else:
                client.volumes.get(o.name).remove(force=True)
            done.append(f"removed {o.kind} {o.name}")
        except docker.errors.DockerException as exc:
            done.append(f"could not remove {o.kind} {o.name}: {exc.__class__.__name__}")
    if done:
        ctx.store.add_event(None, ctx.actor, "doctor:fix", f"{len(done)} orphan(s)")
    return done
