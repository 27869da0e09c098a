"""What keeps a reconcile pass, a route change and a metrics round from growing with the number
of apps (issue 33; bench/scale.py measures them): one container listing per pass, inspects only
of containers something happened to, many routes in one `nginx -t` and one reload, a route
rendered only when its upstreams moved, container stats read from the cgroup files."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from paas.core import cgroups, names
from paas.core.routes import Route
from paas.errors import PaasError
from paas.plugins import plugins
from paas.router.nginx import Router
from paas.scheduler import host_containers
from paas.services import reconcile
from paas.settings import Settings

INSTANCE = "abcdef0123"


def summary(cid: str, app: str, status: str = "Up 2 hours", state: str = "running") -> dict:
    labels = names.app_labels(INSTANCE, app, names.ROLE_PROCESS, **{names.LABEL_TYPE: "web"})
    return {"Id": cid, "Labels": labels, "State": state, "Status": status}


class FakeContainer:
    def __init__(self, cid: str, labels: dict) -> None:
        self.id, self.labels, self.status, self.attrs = cid, labels, "running", {}


class FakeApi:
    base_url = "http+docker://fake-survey"

    def __init__(self) -> None:
        self.listed: list[dict] = []
        self.events_seen: list[dict] = []
        self.calls = {"list": 0, "events": 0}

    def containers(self, all: bool, filters: dict) -> list[dict]:  # noqa: A002 - docker's name
        self.calls["list"] += 1
        wanted = [f.split("=", 1) for f in filters["label"]]
        return [s for s in self.listed if not [1 for k, v in wanted if s["Labels"].get(k) != v]]

    def events(self, **kwargs) -> list[dict]:  # type: ignore[no-untyped-def]
        self.calls["events"] += 1
        return list(self.events_seen)


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.inspected: list[str] = []
        outer = self

        class Containers:
            def get(self, cid: str) -> FakeContainer:
                outer.inspected.append(cid)
                found = next(s for s in outer.api.listed if s["Id"] == cid)
                return FakeContainer(cid, found["Labels"])

        self.containers = Containers()


def one_pass(client: FakeClient, apps: list[str]) -> dict[str, list]:
    with host_containers.survey(client, INSTANCE):  # type: ignore[arg-type]
        return {app: host_containers.app_containers(client, INSTANCE, app) for app in apps}  # type: ignore[arg-type]


def test_a_pass_lists_once_and_inspects_only_what_changed() -> None:
    client = FakeClient()
    apps = [f"app{i}" for i in range(50)]
    client.api.listed = [summary(f"{i:064x}", app) for i, app in enumerate(apps)]
    first = one_pass(client, apps)
    assert all(len(found) == 1 for found in first.values())
    assert client.api.calls["list"] == 1 and len(client.inspected) == 50  # the first: everything

    client.inspected.clear()
    one_pass(client, apps)
    # Nothing happened (the engine's events since the first survey say so): the first listing
    # again, nothing inspected.
    assert client.api.calls["list"] == 1 and client.inspected == []

    # An event (a restart), a state change and a young container are inspected again; a
    # container that is gone is forgotten.
    client.api.events_seen = [{"Actor": {"ID": f"{3:064x}"}}]
    client.api.listed[5] = summary(f"{5:064x}", "app5", status="Exited (1) 2 seconds ago", state="exited")
    client.api.listed[7] = summary(f"{7:064x}", "app7", status="Up 4 seconds")
    del client.api.listed[9]
    found = one_pass(client, apps)
    assert sorted(client.inspected) == [f"{3:064x}", f"{5:064x}", f"{7:064x}"]
    assert found["app9"] == []
    kept = host_containers._kept[(FakeApi.base_url, INSTANCE)]
    assert f"{9:064x}" not in kept and len(kept) == 49


def test_without_events_everything_is_inspected() -> None:
    client = FakeClient()
    client.api.base_url = "http+docker://fake-no-events"
    client.api.listed = [summary(f"{i:064x}", f"a{i}") for i in range(3)]
    one_pass(client, ["a0", "a1", "a2"])

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise docker.errors.APIError("events unavailable")

    one_pass(client, ["a0", "a1", "a2"])  # the second survey reads the events
    client.api.events = broken  # type: ignore[method-assign]
    client.inspected.clear()
    one_pass(client, ["a0", "a1", "a2"])
    assert len(client.inspected) == 3  # nothing known of what happened: all inspected again
    client.inspected.clear()
    one_pass(client, ["a0", "a1", "a2"])
    assert len(client.inspected) == 3  # and the next survey starts over (no events since when?)


def test_outside_a_pass_nothing_is_kept_or_shared() -> None:
    client = FakeClient()
    client.api.listed = [summary(f"{1:064x}", "solo")]
    assert host_containers._surveyed(client, INSTANCE) is None  # type: ignore[arg-type]
    with host_containers.survey(client, INSTANCE):  # type: ignore[arg-type]
        assert host_containers._surveyed(client, "other00000") is None  # another instance: not this one


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_many_routes_take_one_check_and_one_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    router = Router(Settings(data_dir=tmp_path, http_port=free_port(), http_bind="127.0.0.1", https_port=0))
    router.start()
    try:
        checks, reloads = [], []
        check, reload = router._check_candidate, router.reload
        monkeypatch.setattr(router, "_check_candidate", lambda changes: checks.append(1) or check(changes))
        monkeypatch.setattr(router, "reload", lambda: reloads.append(1) or reload())
        routes = [Route(f"app{i}", [f"app{i}.example.com"], [f"10.9.0.{i}:5000"]) for i in range(1, 41)]
        router.set_routes(routes)
        assert (len(checks), len(reloads)) == (1, 1)
        assert len(router.routed_apps()) == 40
        router.set_routes(routes)  # nothing changed: no check, no reload
        assert (len(checks), len(reloads)) == (1, 1)
        # One route nginx refuses: none of the batch is written, what served still serves.
        bad = Route("app1", ["app1.example.com"], ["10.9.0.1:99999"])  # a port nginx refuses
        moved = Route("app2", ["app2.example.com"], ["10.9.0.99:5000"])
        with pytest.raises(PaasError, match="nginx -t"):
            router.set_routes([moved, bad])
        assert "10.9.0.2:5000" in (router.apps_dir / "app2.conf").read_text()
    finally:
        router.stop()


def test_a_pass_routes_an_app_only_when_its_upstreams_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Ctx:
        settings = Settings(data_dir=tmp_path)

    ctx = Ctx()
    nginx = Router(ctx.settings)
    monkeypatch.setattr(reconcile, "router", lambda ctx: nginx)
    assert reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    reconcile._remember_route(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    assert not reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    assert reconcile._route_changed(ctx, "web", {"10.0.0.7:5000": 3})  # type: ignore[arg-type]
    assert reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 4})  # type: ignore[arg-type]
    # Its file changed by hand (made, edited, replaced, removed): routed again at the next visit.
    nginx.apps_dir.mkdir(parents=True)
    conf = nginx.apps_dir / "web.conf"
    conf.write_text("server {}\n")
    assert reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    reconcile._remember_route(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    assert not reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    with conf.open("a") as f:
        f.write("# edited\n")
    assert reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    reconcile._remember_route(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    conf.unlink()
    assert reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    reconcile._remember_route(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    assert not reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]
    later = reconcile.time.monotonic() + reconcile.ROUTE_REFRESH_SECONDS + 1
    monkeypatch.setattr(reconcile.time, "monotonic", lambda: later)
    assert reconcile._route_changed(ctx, "web", {"10.0.0.2:5000": 3})  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_container_stats_come_from_the_cgroup_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    cid = "ab" * 32
    if version == "v1":
        cpu, mem = tmp_path / "cpu,cpuacct" / "docker" / cid, tmp_path / "memory" / "docker" / cid
        cpu.mkdir(parents=True)
        mem.mkdir(parents=True)
        (cpu / "cpuacct.usage").write_text("123456789\n")
        (mem / "memory.usage_in_bytes").write_text("10485760\n")
        (mem / "memory.limit_in_bytes").write_text("536870912\n")
        (mem / "memory.stat").write_text("cache 4096\ntotal_inactive_file 4096\n")
    else:
        cpu = mem = tmp_path / "system.slice" / f"docker-{cid}.scope"
        cpu.mkdir(parents=True)
        (cpu / "cpu.stat").write_text("usage_usec 123456\nuser_usec 100000\n")
        (mem / "memory.current").write_text("10485760\n")
        (mem / "memory.max").write_text("max\n")
        (mem / "memory.stat").write_text("anon 9000000\ninactive_file 4096\n")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    monkeypatch.setattr(cgroups, "_found", {})
    found = cgroups.stats(cid)
    assert found is not None
    assert found["cpu_stats"]["cpu_usage"]["total_usage"] == (123456789 if version == "v1" else 123456000)
    assert found["cpu_stats"]["system_cpu_usage"] > 0
    assert found["memory_stats"]["usage"] == 10485760
    assert found["memory_stats"]["limit"] > 0  # "max": the host's memory, as docker says
    key = "total_inactive_file" if version == "v1" else "inactive_file"
    assert found["memory_stats"]["stats"][key] == 4096
    assert cgroups.stats("cd" * 32) is None  # not here: the caller asks dockerd
    assert cgroups.stats("../../etc") is None  # only a container id names a folder


def test_a_round_reads_the_host_once_and_tries_the_layout_that_matched_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round over many containers: /proc/stat and /proc/meminfo once (not per container), and
    each container's folder found at the first try once one container's was."""
    ids = [f"{i:02x}" * 32 for i in range(3)]
    for cid in ids:
        d = tmp_path / "system.slice" / f"docker-{cid}.scope"
        d.mkdir(parents=True)
        (d / "cpu.stat").write_text("usage_usec 5\n")
        (d / "memory.current").write_text("100\n")
        (d / "memory.max").write_text("200\n")
        (d / "memory.stat").write_text("inactive_file 1\n")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    monkeypatch.setattr(cgroups, "_found", {})
    monkeypatch.setitem(cgroups._last, "layout", 0)  # nothing matched yet
    host = cgroups.Host()
    monkeypatch.setattr(cgroups, "system_cpu_usage", lambda: pytest.fail("read /proc/stat again"))
    monkeypatch.setattr(cgroups, "host_memory", lambda: pytest.fail("read /proc/meminfo again"))
    looked: list[str] = []
    exists = os.path.exists
    monkeypatch.setattr(cgroups.os.path, "exists", lambda path: looked.append(path) or exists(path))
    found = [cgroups.stats(cid, host) for cid in ids]
    assert [f["cpu_stats"]["system_cpu_usage"] for f in found if f] == [host.system_cpu] * 3
    assert [f["memory_stats"]["limit"] for f in found if f] == [200] * 3
    assert len(looked) == 6 + 1 + 1  # the first searched every layout; the others went straight there
    looked.clear()
    assert [cgroups.stats(cid, host) for cid in ids] == found
    assert looked == []  # the next round: every folder known
    shutil.rmtree(tmp_path / "system.slice" / f"docker-{ids[0]}.scope")
    assert cgroups.stats(ids[0], host) is None  # gone: forgotten, and looked for again next time
    assert ids[0] not in cgroups._found


def test_newest_samples_are_every_apps_last_samples_in_one_read(tmp_path: Path) -> None:
    from paas.store import Sample, Store

    store = Store(tmp_path / "paas.db")
    rows = [
        Sample(app, "web.1", f"c-{app}-{n}", at, 0, 0, 1, None, 1, 1)
        for app in ("a", "b")
        for n in (1, 2)
        for at in (1000.0, 1010.0)
    ]
    store.add_samples(rows, prune_before=None)
    newest = store.newest_samples()
    assert newest == {app: store.last_samples(app) for app in ("a", "b")}
    assert {s.at for per in newest.values() for s in per.values()} == {1010.0}


def test_samples_are_pruned_per_app_on_its_index(tmp_path: Path) -> None:
    """A round samples every app: each app's prune must not scan every other app's rows."""
    from paas.store import Sample, Store

    store = Store(tmp_path / "paas.db")
    old, new = 1000.0, 5000.0
    store.add_samples([Sample(a, "web.1", f"c-{a}", old, 0, 0, 1, None, 1, 1) for a in ("a", "b")], 0)
    store.add_samples([Sample("a", "web.1", "c-a", new, 0, 0, 1, None, 1, 1)], prune_before=new - 900)
    assert store.last_sample_at("b") == old  # another app's rows are its own round's to prune
    assert len(store._all("SELECT * FROM process_stats WHERE app = 'a'")) == 1
    plan = store._all("EXPLAIN QUERY PLAN DELETE FROM process_stats WHERE app = ? AND at < ?", ("a", 1.0))
    assert any("process_stats_app" in row["detail"] for row in plan)
    store.prune_samples(new - 900)  # once a round: what no app's own prune reaches (b, gone)
    assert store.last_sample_at("b") is None


def test_an_app_changed_after_the_listing_is_listed_again(tmp_path: Path) -> None:
    """A deploy that released the app's lock after the pass listed its containers: the pass,
    now holding the lock, lists that app again (it would start duplicates of the new ones)."""
    from paas.core.context import Context
    from paas.services import locks

    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    client = FakeClient()
    client.api.base_url = "http+docker://fake-relist"
    client.api.listed = [summary(f"{1:064x}", "deployed"), summary(f"{2:064x}", "calm")]
    with host_containers.survey(client, INSTANCE, lambda a, t: locks.released_since(ctx, a, t)) as s:  # type: ignore[arg-type]
        s._list()
        assert client.api.calls["list"] == 1
        lock = locks.AppLock(ctx, "deployed")
        lock.acquire()
        client.api.listed = [summary(f"{3:064x}", "deployed"), summary(f"{2:064x}", "calm")]  # the new one
        lock.release()  # the deploy ends after the listing
        found = host_containers.app_containers(client, INSTANCE, "deployed")  # type: ignore[arg-type]
        assert [c.id for c in found] == [f"{3:064x}"] and client.api.calls["list"] == 2
        time.sleep(0)  # calm's lock was never released: no listing of its own
        host_containers.app_containers(client, INSTANCE, "calm")  # type: ignore[arg-type]
        host_containers.app_containers(client, INSTANCE, "deployed")  # type: ignore[arg-type]
        assert client.api.calls["list"] == 2  # each app checked once a pass; calm: as listed


def test_a_fingerprint_is_the_same_only_when_nothing_happened_to_the_app() -> None:
    client = FakeClient()
    client.api.base_url = "http+docker://fake-fingerprint"
    client.api.listed = [summary(f"{1:064x}", "calm"), summary(f"{2:064x}", "busy")]

    def prints() -> dict[str, tuple | None]:
        with host_containers.survey(client, INSTANCE) as s:  # type: ignore[arg-type]
            return {app: s.fingerprint(app) for app in ("calm", "busy", "none")}

    assert prints() == {"calm": None, "busy": None, "none": None}  # no events read yet: cannot tell
    first = prints()
    assert first["calm"] is not None and first["none"] == ()
    assert prints() == first
    client.api.events_seen = [{"Actor": {"ID": f"{2:064x}"}}]  # busy's container restarted
    client.api.listed[1] = summary(f"{2:064x}", "busy", status="Up 3 seconds")  # started just now
    assert prints() == {**first, "busy": None}
    client.api.events_seen = []  # no event since, but still young: the listing is made again
    assert prints()["busy"] is None and client.api.calls["list"] == 3
    client.api.events_seen = [{"Actor": {"ID": f"{9:064x}"}}]  # replaced (destroyed, created)
    client.api.listed[1] = summary(f"{9:064x}", "busy")  # ... and settled
    assert prints()["busy"] is None
    client.api.events_seen = []
    again = prints()
    assert again["busy"] not in (None, first["busy"]) and again["calm"] == first["calm"]
    assert client.api.calls["list"] == 4  # settled, nothing happened: the last listing again


def test_a_pass_passes_over_an_app_nothing_happened_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Visited once, then only when something happened to it (a lock released: a deploy; its
    formation; its containers), or when its last visit is PAAS_RECONCILE_FULL_SECONDS old."""
    from paas.core.context import Context
    from paas.scheduler.interface import Converged
    from paas.services import locks

    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    for name in ("one", "two", "three"):
        ctx.store.create_app(name)
    seen = {"one": ("c1",), "two": ("c2",), "three": ("c3",)}
    visits: list[str] = []

    class Scheduler:
        def fingerprint(self, app: str) -> tuple | None:
            return seen[app]

        def converge(self, app: str, want: object) -> Converged:
            visits.append(app)
            return Converged()

        def probes(self, started: list) -> list:
            return []

    monkeypatch.setattr(reconcile.schedulers, "for_app", lambda ctx, app: Scheduler())
    monkeypatch.setattr(
        reconcile.schedulers, "surveyed", lambda ctx, apps: __import__("contextlib").nullcontext()
    )
    monkeypatch.setattr(reconcile.sched, "containers_of", lambda *a: [])
    routed: list[str] = []
    refused: set[str] = set()  # apps whose route nginx refuses

    class Router:
        def set_routes(self, routes: list) -> None:
            if refused & {r.app for r in routes}:
                raise PaasError("nginx -t: refused")
            routed.extend(sorted(r.app for r in routes))

        def set_route(self, route: Route) -> None:
            if route.app in refused:
                raise PaasError("nginx -t: refused")
            routed.append(route.app)

        def file_state(self, name: str) -> None:
            return None

    monkeypatch.setattr(reconcile, "router", lambda ctx: Router())
    monkeypatch.setattr(reconcile, "guard_egress", lambda ctx: None)
    plugins(set())  # the built-ins, importable as paas_plugins.<name>: the swarm's pass looks at no engine
    swarm_nodes = importlib.import_module("paas_plugins.swarm.nodes")
    monkeypatch.setattr(swarm_nodes, "reconcile", lambda ctx, apps=None: None)

    def one() -> list[str]:
        visits.clear()
        reconcile.reconcile_all(ctx)
        return sorted(visits)

    assert one() == ["one", "three", "two"]
    assert routed == ["one", "three", "two"]
    assert one() == []  # nothing happened (a route put in place is no news): no app visited
    assert reconcile.last_pass(ctx)["visited"] == 0  # type: ignore[index]
    with locks.app_lock(ctx, "one"):  # a deploy, a restart: whatever holds the lock
        pass
    ctx.store.set_formation(ctx.store.get_app("two").id, {"web": 2})  # type: ignore[union-attr]
    assert one() == ["one", "two"]
    time.sleep(1.1)  # a release counts within a second of a pass's start (the file clock's margin)
    assert one() == ["one"]
    assert one() == []
    seen["three"] = ("c3", "c4")  # a container more (the scheduler's survey says so)
    assert one() == ["three"]
    with locks.app_lock(ctx, "two", mark=False):  # a pass's own visit is no news
        pass
    assert one() == []
    refused.add("two")  # a route nginx refuses: the app is looked at again until it is in place
    reconcile._routed.pop((str(ctx.settings.data_dir), "two"))
    with locks.app_lock(ctx, "two"):
        pass
    time.sleep(1.1)
    assert one() == ["two"] and one() == ["two"]
    refused.clear()
    assert one() == ["two"] and one() == []
    later = reconcile.time.monotonic() + ctx.settings.reconcile_full_seconds + 1
    monkeypatch.setattr(reconcile.time, "monotonic", lambda: later)
    assert one() == ["one", "three", "two"]  # every app, at least every PAAS_RECONCILE_FULL_SECONDS
    monkeypatch.setattr(ctx, "settings", replace(ctx.settings, reconcile_full_seconds=0.0))
    assert one() == ["one", "three", "two"] and one() == ["one", "three", "two"]  # 0: every pass
    seen["one"] = None  # type: ignore[assignment]  # the scheduler cannot tell (swarm)
    monkeypatch.setattr(ctx, "settings", replace(ctx.settings, reconcile_full_seconds=30.0))
    assert "one" in one() and one() == ["one"]


def test_disk_usage_of_every_app_is_one_commit_and_skips_an_app_destroyed_meanwhile(tmp_path: Path) -> None:
    from paas.store import Store

    store = Store(tmp_path / "paas.db")
    kept, gone = store.create_app("kept"), store.create_app("gone")
    store.delete_app(gone.id)  # destroyed while the round measured it
    commits: list[int] = []
    real = store.transaction

    def counted():  # type: ignore[no-untyped-def]
        commits.append(1)
        return real()

    store.transaction = counted  # type: ignore[method-assign]
    store.set_disk_usages({kept.id: {"repo": 5, "logs": 1}, gone.id: {"repo": 7}}, 100.0)
    assert commits == [1]
    assert store.disk_usage([kept.id, gone.id]) == {kept.id: {"repo": 5, "logs": 1}}


def test_only_the_memory_stat_keys_the_sampler_uses_are_parsed(tmp_path: Path) -> None:
    """memory.stat holds about 40 lines: the sampler picks its two keys, wherever they are."""
    stat = tmp_path / "memory.stat"
    stat.write_text("cache 1\ninactive_filex 2\ninactive_file 3\ntotal_inactive_file 4")
    assert cgroups._keys(str(stat), cgroups.MEMORY_STAT_KEYS) == {
        "inactive_file": 3,
        "total_inactive_file": 4,
    }
    stat.write_text("inactive_file 5\nanon 6\n")
    assert cgroups._keys(str(stat), cgroups.MEMORY_STAT_KEYS) == {"inactive_file": 5}
    assert cgroups._fields(str(stat)) == {"inactive_file": 5, "anon": 6}


def test_a_sampler_round_takes_the_last_round_from_memory_and_prunes_once_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metrics plugin's round every 10 s: with 200 apps, reading every app's newest samples
    and last times back from the store (a scan of 18,000 rows, each row a Sample again) and a
    prune scan every round were a third of its CPU. The round keeps its own samples for the
    next one (CPU % is still against each container's previous sample) and prunes once a minute."""
    from paas.core.context import Context
    from paas.scheduler.inventory import ProcessRecord
    from paas.services import metrics

    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    apps = ["a", "b"]
    for a in apps:
        ctx.store.create_app(a)
    listing = {a: [ProcessRecord(a, "web", 1, 1, "running", f"c-{a}")] for a in apps}
    monkeypatch.setattr(metrics, "processes_by_app", lambda ctx: listing)
    cpu = {"c-a": 0, "c-b": 0}

    def stats(client: object, proc: ProcessRecord, host: object = None) -> dict:
        cpu[proc.container] += 500  # half of the host's CPU time below, whatever the round
        usage = {"total_usage": cpu[proc.container]}
        return {
            "cpu_stats": {"cpu_usage": usage, "system_cpu_usage": 1000 * rounds[0], "online_cpus": 1},
            "memory_stats": {"usage": 10, "limit": 100, "stats": {}},
        }

    rounds = [0]
    monkeypatch.setattr(metrics, "_one", stats)
    monkeypatch.setattr(metrics.engine, "is_local", lambda client: True)
    monkeypatch.setattr(metrics.cgroups, "Host", lambda: None)
    pruned: list[float] = []
    monkeypatch.setattr(metrics, "prune", lambda ctx, at: pruned.append(at))
    for at in (1000.0, 1010.0, 1020.0, 1030.0, 1040.0, 1050.0, 1060.0, 1070.0):
        rounds[0] += 1
        out = metrics.sample_round(ctx, at)
        if at == 1000.0:  # after the first round: nothing is read back from the store
            monkeypatch.setattr(ctx.store, "newest_samples", lambda: pytest.fail("read the last round back"))
            monkeypatch.setattr(ctx.store, "last_sample_times", lambda: pytest.fail("read the times back"))
            assert [s.cpu_percent for s in out["a"]] == [None]  # nothing before it
        else:
            assert [s.cpu_percent for s in out["a"]] == [50.0]  # against the round before
    assert pruned == [1000.0, 1060.0]
    assert len(ctx.store.samples_since("a", 0)) == 8  # every sample stored, as before
