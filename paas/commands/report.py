"""report (Dokku's): every report of one app, or of every app, in one go."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import apps as apps_service
from paas.services import checks, lookup, processes, resources


@command("report", "Everything about one app, or every app: app, processes, domains, checks, limits.")
@click.argument("app", required=False)
@FORMAT_OPTION
def report(env: CommandEnv, app: str | None, fmt: str) -> None:
    names = [lookup.get_app(env.ctx, app).name] if app else [a.name for a in lookup.list_apps(env.ctx)]
    data = {
        n: {
            "app": apps_service.app_info(env.ctx, n),
            "processes": [p.as_json() for p in processes.list_processes(env.ctx, n)],
            "checks": checks.report(env.ctx, n),
            "resources": resources.report(env.ctx, n),
        }
        for n in names
    }
    if fmt == "json":
        env.json(data if app is None else data[names[0]])
        return
    for name, d in data.items():
        info = d["app"]
        env.echo(f"=====> {name}")
        env.echo(f"       url:        {info['url']}")
        env.echo(f"       domains:    {' '.join(info['domains']) or '-'}")
        env.echo(f"       release:    {'v' + str(info['release']) if info['release'] else 'not deployed'}")
        env.echo(f"       commit:     {(info['commit'] or '-')[:7]}  buildpack: {info['buildpack'] or '-'}")
        env.echo(f"       formation:  {' '.join(f'{t}={n}' for t, n in info['formation'].items()) or '-'}")
        for p in d["processes"]:
            env.echo(f"       {p['dyno']:<11} {p['state']}  v{p['release']}  restarts {p['restarts']}")
        env.echo(f"       checks off: {', '.join(d['checks']['disabled']) or 'none'}")
        lim = d["resources"]["app"]
        env.echo(f"       limits:     memory={lim['memory']} cpu={lim['cpus']} pids={lim['pids']}")
