"""`metrics <app>` and `checks:watch <app>`: parse and render only (rules in service.py)."""

from __future__ import annotations

import time

import click

from paas.plugin_api import FORMAT_OPTION, CommandEnv, define

from . import service
from .watch import ms, pct


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _time(value: float | None) -> str:
    return "-" if value is None else ms(value)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _watch_line(w: dict) -> str:
    state = w["state"]
    if state == "watching":
        return f"v{w['release']} watched until {_when(w['ends_at'])} (against v{w['previous']})"
    if w["reason"]:
        return f"{w['reason']} ({state})"
    return f"v{w['release']} {state} after its window"


@define(
    "metrics",
    "Requests (status classes, upstream p50/p95/p99, bytes) and process CPU/memory of an app.",
    permission="view",
)
@click.argument("app")
@click.option("--since", default="1h", help="How far back: 30m, 1h, 24h, 7d (kept 60 days).")
@FORMAT_OPTION
def metrics(env: CommandEnv, app: str, since: str, fmt: str) -> None:
    data = service.report(env.ctx, app, since)
    if fmt == "json":
        env.json(data)
        return
    r = data["requests"]
    env.echo(f"=====> {app} metrics, last {_span(data['since'])} ({data['step']} s steps)")
    env.echo(
        f"requests     {r['requests']} ({r['rate']:g}/s)  2xx {r['2xx']}  3xx {r['3xx']}  4xx {r['4xx']}"
        f"  5xx {r['5xx']} ({pct(r['error_ratio'])})"
    )
    env.echo(f"upstream     p50 {_time(r['p50'])}  p95 {_time(r['p95'])}  p99 {_time(r['p99'])}")
    env.echo(f"bytes out    {_bytes(r['bytes'])}")
    for i, rel in enumerate(data["releases"]):
        head = "by release  " if i == 0 else "            "
        env.echo(
            f"{head} v{rel['release']}: {rel['requests']} requests, 5xx {pct(rel['error_ratio'])},"
            f" p95 {_time(rel['p95'])}"
        )
    for i, (ptype, p) in enumerate(data["processes"].items()):
        head = "processes   " if i == 0 else "            "
        env.echo(
            f"{head} {ptype}: CPU {p['cpu_percent']:.1f}% avg, memory {_bytes(p['mem_bytes'])} avg"
            f" (max {_bytes(p['mem_max_bytes'])})"
        )
    if data["watch"]:
        env.echo(f"watch        {_watch_line(data['watch'])}")


@define(
    "checks:watch",
    "Show or set the post-deploy watch: roll back a new release whose errors or p95 jump.",
    permission="operate",
)
@click.argument("app")
@click.option("--window", type=int, help="Seconds to watch after each deploy (30-3600, default 300).")
@click.option(
    "--max-5xx-ratio", "max_5xx_ratio", type=float, help="Points of 5xx over the previous release's (0.1)."
)
@click.option("--max-p95-factor", "max_p95_factor", type=float, help="Times the previous p95 (3; 0: off).")
@click.option("--min-requests", "min_requests", type=int, help="Requests before anything is decided (30).")
@click.option("--on/--off", "enabled", default=None, help="Watch this app's deploys (on by default).")
@click.option("--reset", is_flag=True, help="Forget what this command set (app.json and defaults again).")
@FORMAT_OPTION
def checks_watch(
    env: CommandEnv,
    app: str,
    window: int | None,
    max_5xx_ratio: float | None,
    max_p95_factor: float | None,
    min_requests: int | None,
    enabled: bool | None,
    reset: bool,
    fmt: str,
) -> None:
    given = {
        "window": window,
        "max_5xx_ratio": max_5xx_ratio,
        "max_p95_factor": max_p95_factor,
        "min_requests": min_requests,
        "enabled": enabled,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    if changes or reset:
        data = service.set_watch(env.ctx, app, changes, reset=reset)
    else:
        data = service.watch_report(env.ctx, app)
    if fmt == "json":
        env.json(data)
        return
    env.echo(f"=====> {app} post-deploy watch: {data['describe']}")
    if data["set_by_command"]:
        env.echo(f"set by checks:watch: {', '.join(data['set_by_command'])} (--reset forgets them)")
    if data["last"]:
        env.echo(f"last: {_watch_line(data['last'])}")


COMMANDS = [metrics, checks_watch]
