"""metrics: every request through the router counted per app and release, process CPU and
memory sampled, kept as history (10 s for an hour, 1 min for 2 days, 1 h for 60 days), and the
post-deploy watch that rolls a release back when its errors or latency jump.

- The router logs one plain line per request, tagged by nginx with the app and the release that
  answered (`paas_nginx_app` asks for it); `paas server` reads it continuously (collector.py).
- `ssh paas metrics <app> [--since 1h] [--format json]`, the app page's Requests section (charts
  with 1h/24h/7d and release markers), `GET /api/v1/apps/<app>/metrics/history?since=1h`, and
  `GET /api/v1/metrics` (Prometheus text, admins) show it.
- `checks:watch <app>` (and app.json `watch`) sets the watch; the rule is in watch.py.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from paas.plugin_api import PaasError, access, declare_permissions, hookimpl

from . import collector, service
from .commands import COMMANDS
from .watch import check_values, read_plan

if TYPE_CHECKING:
    import click
    from flask import Blueprint

    from paas.plugin_api import App, BuildLog, Context, PushedSource, Release, RouteExtras

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each), its routes, its commands' rules,
# and the Prometheus exposition's (admins only: every app's metrics).
access.declare_entries(
    __name__,
    {
        "charts": dict.fromkeys(("nice_ceiling", "markers", "chart", "charts"), access.PURE),
        "collector": {
            "count": access.PURE,
            **dict.fromkeys(
                ("judge", "restarts", "roll_back", "sample_processes", "run_sampler", "start"),
                access.INTERNAL,
            ),
        },
        "history": dict.fromkeys(("step_for", "merged"), access.PURE),
        "prometheus": {"exposition": access.INTERNAL},
        "service": {
            **dict.fromkeys(("parse_since", "epoch"), access.PURE),
            **dict.fromkeys(("history", "nginx_extras", "watch_settings", "start_watch"), access.INTERNAL),
            "report": "metrics",
            "watch_report": "checks:watch",
            "set_watch": "checks:watch",
            "prometheus_text": "metrics:prometheus",
        },
        "stats": {"parse": access.PURE},
        "watch": dict.fromkeys(
            ("check_values", "effective", "plan", "read_plan", "pct", "ms", "verdict"), access.PURE
        ),
        "web": {"blueprint": access.INTERNAL},
    },
)
access.declare_routes(
    {
        "metrics.static": access.SIGNED_IN,  # its charts' CSS
        "metrics.history": "metrics",
        "metrics.exposition": "metrics:prometheus",
    }
)
declare_permissions(COMMANDS)
access.declare("metrics:prometheus", access.ADMIN)


@hookimpl
def paas_commands() -> list[click.Command]:
    return list(COMMANDS)


@hookimpl
def paas_nginx_app(ctx: Context, extras: RouteExtras) -> None:
    service.nginx_extras(ctx, extras)


@hookimpl
def paas_app_json_keys() -> list[str]:
    return ["watch"]


@hookimpl
def paas_pre_build(source: PushedSource) -> None:
    watch = source.manifest.data.get("watch") or {}
    if not isinstance(watch, dict):
        raise PaasError('app.json: watch must be an object like {"window": 300, "max_5xx_ratio": 0.1}')
    check_values(watch, "app.json")  # a bad `watch` refuses the push, naming the key


@hookimpl
def paas_post_deploy(ctx: Context, app: App, release: Release, log: BuildLog) -> None:
    watch = service.start_watch(ctx, app, release)
    if watch is not None:
        window = read_plan(watch.plan)[0].window
        log.detail(
            f"watching v{release.version} for {window} s"
            f" (rolls back to v{watch.previous} if its errors or p95 jump; checks:watch {app.name})"
        )


@hookimpl
def paas_server_started(ctx: Context, stop: threading.Event) -> None:
    collector.start(ctx, stop)


@hookimpl
def paas_web_blueprints() -> list[Blueprint]:
    from .web import blueprint  # flask is the dashboard's: only its processes load the pages

    return [blueprint()]


@hookimpl
def paas_app_destroyed(ctx: Context, app: App) -> None:
    service.history(ctx).forget_app(app.name)


@hookimpl
def paas_app_renamed(ctx: Context, app: App, old_name: str) -> None:
    service.history(ctx).rename_app(old_name, app.name)
