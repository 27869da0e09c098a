"""doctor: health, disk and orphans (on the host, or over SSH for admins)."""

from __future__ import annotations

import time

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import doctor as doctor_service
from paas.services.disk import human


@command("doctor", "Check dockerd, nginx, SSH and the dashboard; disk use per app; orphans (--fix removes).")
@click.option("--fix", is_flag=True, help="Remove orphaned images, volumes, networks and containers.")
@FORMAT_OPTION
def doctor(env: CommandEnv, fix: bool, fmt: str) -> int:
    found = doctor_service.report(env.ctx)
    fixed = doctor_service.fix(env.ctx, found) if fix else []
    if fmt == "json":
        env.json({**found.as_json(), "fixed": fixed})
        return 0 if all(v == "ok" for v in found.checks.values()) else 1
    env.echo("=====> Services")
    for what, state in found.checks.items():
        env.echo(f"       {what:<10} {state}")
    last = found.reconcile
    if last:
        env.echo(
            f"       {'':<10} last pass {max(0, int(time.time() - last['at']))} s ago:"
            f" {last['seconds']:.2f} s over {last['apps']} app(s)"
        )
    env.echo("=====> Disk")
    for d in found.disk:
        env.echo(f"       {d['what']:<10} {human(d['free'])} free of {human(d['total'])} ({d['path']})")
    env.echo("=====> Apps")
    for app, use in sorted(found.apps.items()):
        env.echo(
            f"       {app:<30} {use['images']} image(s) {human(use['image_bytes'])}, "
            f"build cache {human(use['cache_bytes'])}"
        )
    env.echo(f"=====> Orphans: {len(found.orphans)}")
    for o in found.orphans:
        env.echo(
            f"       {o.kind:<10} {o.name} (app {o.app} is gone) {human(o.size) if o.size else ''}".rstrip()
        )
    if found.orphans and not fix:
        env.echo("       remove them with: doctor --fix")
    for line in fixed:
        env.echo(f"-----> {line}")
    return 0 if all(v == "ok" for v in found.checks.values()) else 1
