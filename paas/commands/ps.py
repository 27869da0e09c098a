"""apps:scale (ps:scale), ps, ps:restart, ps:stop, ps:start, ps:rebuild (ps:set/ps:report: properties)."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, alias, command
from paas.services import formation as formation_service
from paas.services import processes as processes_service
from paas.services import push


def _uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@command("apps:scale", "Scale process types: apps:scale <app> web=2 worker=1 (alias ps:scale).")
@click.argument("app")
@click.argument("scales", nargs=-1)
@FORMAT_OPTION
def scale(env: CommandEnv, app: str, scales: tuple[str, ...], fmt: str) -> None:
    if not scales:
        formation = formation_service.get_formation(env.ctx, app)
        if fmt == "json":
            env.json(formation)
        else:  # Dokku's table, which scripts parse
            env.echo(f"-----> Scaling for {app}")
            env.echo("proctype: qty")
            env.echo("--------: ---")
            for ptype, count in formation.items():
                env.echo(f"{ptype + ':':<5} {count}")
        return
    changes = formation_service.parse_scale_args(list(scales))
    env.echo(f"-----> Scaling {app}: " + " ".join(f"{t}={n}" for t, n in changes.items()))
    release = formation_service.scale(env.ctx, app, changes, env.progress())
    if release is None:
        env.echo("       Stored: applies when the app is deployed or started")


alias("ps:scale", "apps:scale")


@command("ps", "List an app's processes: type.index, state, uptime, release.")
@click.argument("app")
@FORMAT_OPTION
def ps(env: CommandEnv, app: str, fmt: str) -> None:
    procs = processes_service.list_processes(env.ctx, app)
    if fmt == "json":
        env.json([p.as_json() for p in procs])
        return
    if not procs:
        env.echo(f"{app} has no processes")
        return
    current = None
    for p in procs:
        if p.type != current:
            current = p.type
            env.echo(f"=== {p.type} ({sum(1 for q in procs if q.type == p.type)})")
        env.echo(
            f"{p.dyno}: {p.state}  up {_uptime(p.uptime_seconds)}  v{p.release}  restarts {p.restarts}"
            f"  {p.container}" + (f"  on {p.node}" if p.node else "")
        )


@command("ps:restart", "Restart an app's processes (all, or one type) without downtime.")
@click.argument("app")
@click.argument("ptype", required=False)
def restart(env: CommandEnv, app: str, ptype: str | None) -> None:
    env.echo(f"-----> Restarting {app}" + (f" ({ptype})" if ptype else ""))
    processes_service.restart(env.ctx, app, ptype, env.progress())


@command("ps:stop", "Stop every process of an app (ps:start brings them back).")
@click.argument("app")
def stop(env: CommandEnv, app: str) -> None:
    processes_service.stop(env.ctx, app, env.progress())


@command("ps:start", "Start a stopped app's processes.")
@click.argument("app")
def start(env: CommandEnv, app: str) -> None:
    env.echo(f"-----> Starting {app}")
    processes_service.start(env.ctx, app, env.progress())


@command("ps:rebuild", "Build the current commit again and deploy it (Dokku's).")
@click.argument("app")
def rebuild(env: CommandEnv, app: str) -> None:
    env.echo(f"-----> Rebuilding {app} from its current commit")
    push.rebuild(env.ctx, app, env.progress())
