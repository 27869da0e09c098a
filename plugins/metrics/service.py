"""Request metrics, process history and the post-deploy watch: the rules (commands, pages and the
API only parse and render). Every entry point checks access with the core's table: `metrics`
(view) to read an app's, `checks:watch` (operate) to change its watch, admins for Prometheus.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from paas.plugin_api import App, Context, PaasError, Release, RouteExtras, access

from . import prometheus
from . import watch as watch_rules
from .history import MAX_SINCE, History, Watch, merged, step_for
from .stats import Stats

WATCH_ACTOR = "watch"  # who rolls back; its own rollback releases are not watched again
_SINCE = re.compile(r"^([1-9][0-9]{0,6})([smhd]?)$")
_UNITS = {"s": 1, "": 1, "m": 60, "h": 3600, "d": 86400}


def history(ctx: Context) -> History:
    """The metrics history of this process (one SQLite connection, shared by every context copy)."""
    return ctx.shared("metrics-history", lambda: History(ctx.settings.plugins_dir / "metrics" / "metrics.db"))


def parse_since(text: str | None, default: int = 3600) -> int:
    """`90s`, `30m`, `1h`, `7d` or plain seconds; at most the 60 days kept."""
    if text is None or text == "":
        return default
    m = _SINCE.fullmatch(text.strip().lower())
    if not m:
        raise PaasError(f"invalid --since {text!r}: use a duration like 30m, 1h, 24h or 7d")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if not 10 <= seconds <= MAX_SINCE:
        raise PaasError(f"--since must be from 10s to {MAX_SINCE // 86400}d (history is kept 60 days)")
    return seconds


def nginx_extras(ctx: Context, extras: RouteExtras) -> None:
    """Every app's requests are logged for the server to count."""
    extras.set_metrics_log(str(ctx.settings.metrics_log_path))


def epoch(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _markers(ctx: Context, app: App, since: float) -> list[dict]:
    """The releases made in the range (the charts draw a line at each), with why a watch rolled
    one back."""
    reasons = {w.release: w.reason for w in history(ctx).watches(app=app.name) if w.reason}
    out = []
    for r in reversed(ctx.store.list_releases(app.id)):
        at = epoch(r.created_at)
        if at >= since and r.status != "pending":
            out.append(
                {
                    "version": r.version,
                    "at": at,
                    "description": r.description,
                    "status": r.status,
                    "rolled_back": reasons.get(r.version),
                }
            )
    return out


def report(ctx: Context, app_name: str, since_text: str | None = None, now: float | None = None) -> dict:
    """An app's requests and processes over the last `since`: totals, per release, a series at the
    resolution that range is kept at, release markers and the watch. `metrics --format json` and
    the API answer exactly this."""
    app = access.authorize(ctx, app_name, "metrics")
    seconds = parse_since(since_text)
    now = time.time() if now is None else now
    since = now - seconds
    step = step_for(seconds)
    h = history(ctx)
    points = h.request_points(app.name, step, since)
    by_at: dict[int, Stats] = {}
    by_release: dict[int, Stats] = {}
    for at, release, stats in points:
        by_at.setdefault(at, Stats()).merge(stats)
        by_release.setdefault(release, Stats()).merge(stats)
    total = merged(points)
    procs = h.process_points(app.name, step, since)
    watches = h.watches(app=app.name)
    return {
        "app": app.name,
        "since": seconds,
        "step": step,
        "now": now,
        "requests": {**total.summary(), "rate": round(total.requests / seconds, 3)},
        "releases": [{"release": r, **s.summary()} for r, s in sorted(by_release.items(), reverse=True) if r],
        "processes": {
            ptype: {
                "cpu_percent": round(sum(p.cpu_sum for p in pts) / max(1, sum(p.samples for p in pts)), 2),
                "mem_bytes": int(sum(p.mem_sum for p in pts) / max(1, sum(p.samples for p in pts))),
                "mem_max_bytes": max(p.mem_max for p in pts),
            }
            for ptype, pts in sorted(procs.items())
        },
        "series": [
            {
                "at": at,
                "requests": s.requests,
                "5xx": s.errors,
                "bytes": s.bytes,
                "p95": s.summary()["p95"],
            }
            for at, s in sorted(by_at.items())
        ],
        "process_series": {
            ptype: [{"at": p.at, "cpu_percent": round(p.cpu, 2), "mem_bytes": int(p.mem)} for p in pts]
            for ptype, pts in sorted(procs.items())
        },
        "markers": _markers(ctx, app, since),
        "watch": watches[-1].as_json() if watches else None,
        "watch_settings": asdict(watch_settings(ctx, app)),
    }


# the post-deploy watch
def watch_settings(ctx: Context, app: App) -> watch_rules.WatchSettings:
    """What the watch of the app's next deploy uses (app.json of the current release, then
    `checks:watch`)."""
    release = ctx.store.current_release(app.id)
    build = ctx.store.get_build(release.build_id) if release and release.build_id else None
    manifest = (build.manifest or {}).get("watch") if build else None
    return watch_rules.effective(
        manifest if isinstance(manifest, dict) else None, ctx.store.get_setting(app.id, watch_rules.SETTING)
    )


def watch_report(ctx: Context, app_name: str) -> dict:
    app = access.authorize(ctx, app_name, "checks:watch")
    settings = watch_settings(ctx, app)
    explicit = json.loads(ctx.store.get_setting(app.id, watch_rules.SETTING) or "{}")
    watches = history(ctx).watches(app=app.name)
    return {
        "settings": asdict(settings),
        "set_by_command": sorted(explicit),
        "describe": settings.describe(),
        "last": watches[-1].as_json() if watches else None,
    }


def set_watch(ctx: Context, app_name: str, changes: dict[str, Any], reset: bool = False) -> dict:
    """`checks:watch <app> --window 300 --max-5xx-ratio 0.1 ...` (`--off`/`--on`, `--reset`)."""
    app = access.authorize(ctx, app_name, "checks:watch")
    checked = watch_rules.check_values(changes, "checks:watch")
    explicit = {} if reset else json.loads(ctx.store.get_setting(app.id, watch_rules.SETTING) or "{}")
    explicit.update(checked)
    ctx.store.set_setting(
        app.id, watch_rules.SETTING, json.dumps(explicit, sort_keys=True) if explicit else None
    )
    detail = "reset" if reset and not checked else " ".join(f"{k}={v}" for k, v in sorted(checked.items()))
    ctx.store.add_event(app.name, ctx.actor, "checks:watch", detail or "unchanged")
    return watch_report(ctx, app_name)


def start_watch(ctx: Context, app: App, release: Release, now: float | None = None) -> Watch | None:
    """After a deploy (paas_post_deploy): watch the release for its window, with the previous
    release's last hour as the baseline. Not for the watch's own rollbacks, releases without web
    processes, a first release, or an app whose watch is off."""
    if ctx.actor == WATCH_ACTOR or release.formation.get("web", 0) < 1:
        return None
    settings = watch_settings(ctx, app)
    if not settings.enabled:
        return None
    previous = [
        r for r in ctx.store.list_releases(app.id) if r.version < release.version and r.status == "succeeded"
    ]
    if not previous:
        return None
    now = time.time() if now is None else now
    started = min(epoch(release.created_at), now)
    base = history(ctx).release_stats(
        app.name, previous[0].version, started - watch_rules.BASELINE_SECONDS, started
    )
    watch = Watch(
        app=app.name,
        release=release.version,
        previous=previous[0].version,
        started_at=started,
        ends_at=now + settings.window,
        state="watching",
        reason=None,
        plan=watch_rules.plan(settings, base),
    )
    history(ctx).start_watch(watch)
    return watch


# Prometheus
def prometheus_text(ctx: Context) -> bytes:
    """Every app's metrics in the Prometheus text format: the server's, so admins only."""
    access.require_admin(ctx, "metrics:prometheus")
    return prometheus.exposition(history(ctx))
