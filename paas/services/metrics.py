"""CPU and memory of an app's containers for the app page's chart.

Sampled on demand (the page asks every few seconds while it is open; the metrics plugin's
server thread every 10 s for its history) from the containers' cgroup files (docker's one-shot
stats for an engine elsewhere), and kept RETENTION
seconds in the store, so every gunicorn worker draws the same chart and a page opened again
shows the minutes before. CPU % is computed the way `docker stats`
does, between a container's consecutive samples.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import docker

from paas.core import cgroups, engine
from paas.core.context import Context
from paas.errors import PaasError
from paas.scheduler import inventory
from paas.services import access
from paas.store import Sample

RETENTION = 15 * 60
MIN_INTERVAL = 4.0  # seconds between two samples of one app, whoever asks
PRUNE_SECONDS = 60.0  # how often the round drops samples past RETENTION (a scan of them all)
# Per data dir: the newest samples of the last round, by app and container (the round's own,
# so the next one need not read them back: with 200 apps that read was a third of a round's CPU;
# samples a page took meanwhile are missed, which costs one sample more, never a wrong one), and
# when the round last pruned.
_last_round: dict[str, dict[str, dict[str, Sample]]] = {}
_pruned: dict[str, float] = {}


def _memory(stats: dict) -> tuple[int, int]:
    """Used memory without the page cache (as `docker stats`: cgroup v2 or v1), and the limit."""
    mem = stats.get("memory_stats") or {}
    extra = mem.get("stats") or {}
    cache = extra.get("inactive_file", extra.get("total_inactive_file", 0)) or 0
    usage = int(mem.get("usage") or 0)
    return max(0, usage - int(cache)), int(mem.get("limit") or 0)


def cpu_percent(prev: Sample | None, cpu_total: int, system_total: int, cpus: int) -> float | None:
    if prev is None:
        return None
    cpu_delta = cpu_total - prev.cpu_total
    system_delta = system_total - prev.system_total
    if cpu_delta < 0 or system_delta <= 0:
        return None
    return round(cpu_delta / system_delta * max(1, cpus) * 100.0, 2)


def _one(
    client: docker.DockerClient, proc: inventory.ProcessRecord, host: cgroups.Host | None = None
) -> dict | None:
    """The container's stats: from its cgroup files when the engine is on this host (see
    core/cgroups.py; `host` read once for all), else through dockerd."""
    if host is not None:
        found = cgroups.stats(proc.container, host)
        if found is not None:
            return found
    try:
        return client.api.stats(proc.container, stream=False, one_shot=True)
    except docker.errors.DockerException:
        return None  # gone meanwhile


def prune(ctx: Context, at: float) -> None:
    """Drop every sample past RETENTION (apps destroyed meanwhile too): the sampler, once a round."""
    ctx.store.prune_samples(at - RETENTION)


def processes_by_app(ctx: Context) -> dict[str, list[inventory.ProcessRecord]]:
    """Every process container of this instance, by app (one listing, for a round over all)."""
    out: dict[str, list[inventory.ProcessRecord]] = {}
    for proc in inventory.processes(ctx.docker, ctx.settings.instance_id):
        out.setdefault(proc.app, []).append(proc)
    return out


def sample(
    ctx: Context, app_name: str, at: float | None = None, listed: list[inventory.ProcessRecord] | None = None
) -> int:
    """Take one sample of each running container of the app, unless one was taken just now.
    `listed`: the app's processes, when the caller listed them already. Returns how many were
    stored."""
    app = access.authorize(ctx, app_name, "metrics")
    at = time.time() if at is None else at
    last = ctx.store.last_sample_at(app.name)
    if last is not None and at - last < MIN_INTERVAL:
        return 0
    if listed is None:
        listed = inventory.processes(ctx.docker, ctx.settings.instance_id, app.name)
    samples = _take(ctx, listed, at, ctx.store.last_samples(app.name))
    ctx.store.add_samples(samples, prune_before=at - RETENTION)
    return len(samples)


def sample_round(ctx: Context, at: float) -> dict[str, list[Sample]]:
    """The metrics plugin's round over every app (a server thread, every 10 s): one listing of
    every process, their files read, every sample stored in one transaction, and the samples
    returned by app (an app sampled under MIN_INTERVAL ago, its page open, gives those). Per
    app, a round had cost an access check, two reads of its last samples, one of its last time
    and a transaction of its own: with 200 apps the largest part of the server's idle CPU."""
    listed = processes_by_app(ctx)
    key = str(ctx.settings.data_dir)
    if at - _pruned.get(key, float("-inf")) >= PRUNE_SECONDS:
        prune(ctx, at)
        _pruned[key] = at
    newest = _last_round.get(key)
    if newest is None:  # the server's first round: what the store has
        newest = ctx.store.newest_samples()
        times = ctx.store.last_sample_times()
    else:
        times = {app: max(s.at for s in by_id.values()) for app, by_id in newest.items() if by_id}
    host = cgroups.Host() if engine.is_local(ctx.docker) else None  # once, not once per app
    out: dict[str, list[Sample]] = {}
    taken: list[Sample] = []
    for app in ctx.store.list_apps():
        procs = listed.get(app.name, [])
        if app.stopped or not procs:
            continue
        previous = newest.get(app.name, {})
        last = times.get(app.name)
        if last is not None and at - last < MIN_INTERVAL:
            out[app.name] = [s for s in previous.values() if at - s.at < MIN_INTERVAL]
            continue
        out[app.name] = _take(ctx, procs, at, previous, host)
        taken += out[app.name]
    ctx.store.add_samples(taken, prune_before=None)  # pruned above, every app at once
    _last_round[key] = {app: {s.container: s for s in samples} for app, samples in out.items()}
    return out


def _take(
    ctx: Context,
    listed: list[inventory.ProcessRecord],
    at: float,
    previous: dict[str, Sample],
    host: cgroups.Host | None = None,
) -> list[Sample]:
    """A sample of each running process among `listed` (CPU % against its `previous` one);
    `host`: read once for a round over every app."""
    client = ctx.docker
    procs = [p for p in listed if p.state == "running"]
    if not procs:
        return []
    if engine.is_local(client):  # files to read: no threads needed
        host = host or cgroups.Host()
        raws = [_one(client, p, host) for p in procs]
    else:
        with ThreadPoolExecutor(max_workers=min(8, len(procs))) as pool:
            raws = list(pool.map(lambda p: _one(client, p), procs))
    samples = []
    for proc, raw in zip(procs, raws, strict=True):
        if not raw:
            continue
        cpu = raw.get("cpu_stats") or {}
        cpu_total = int((cpu.get("cpu_usage") or {}).get("total_usage") or 0)
        system_total = int(cpu.get("system_cpu_usage") or 0)
        cpus = int(cpu.get("online_cpus") or 1)
        mem, limit = _memory(raw)
        samples.append(
            Sample(
                app=proc.app,
                dyno=proc.dyno,
                container=proc.container,
                at=at,
                cpu_total=cpu_total,
                system_total=system_total,
                online_cpus=cpus,
                cpu_percent=cpu_percent(previous.get(proc.container), cpu_total, system_total, cpus),
                mem_bytes=mem,
                mem_limit=limit,
            )
        )
    return samples


def current(ctx: Context, app_name: str, seconds: float = 600) -> dict[str, list[Sample]]:
    """What a chart shows: a sample now (at most every MIN_INTERVAL per app), then the history."""
    at = time.time()
    sample(ctx, app_name, at)
    return history(ctx, app_name, seconds, at)


def history(
    ctx: Context, app_name: str, seconds: float = 600, at: float | None = None
) -> dict[str, list[Sample]]:
    """The samples of the last `seconds`, by dyno (a dyno's line goes on across its containers)."""
    app = access.authorize(ctx, app_name, "metrics")
    if not 1 <= seconds <= RETENTION:
        raise PaasError(f"seconds must be from 1 to {RETENTION}: samples are kept {RETENTION // 60} minutes")
    at = time.time() if at is None else at
    out: dict[str, list[Sample]] = {}
    for s in ctx.store.samples_since(app.name, at - seconds):
        out.setdefault(s.dyno, []).append(s)
    return dict(sorted(out.items()))
