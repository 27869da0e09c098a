"""plugins:list: what extends this server (built-in plugins and pip-installed ones)."""

from __future__ import annotations

from paas.commands import FORMAT_OPTION, CommandEnv, command


@command("plugins:list", "List the loaded plugins: name, version, where from, the hooks they implement.")
@FORMAT_OPTION
def plugins_list(env: CommandEnv, fmt: str) -> None:
    plugins = env.ctx.plugins
    rows = sorted(plugins.info.values(), key=lambda p: p.name)
    if fmt == "json":
        env.json([{"name": p.name, "version": p.version, "source": p.source, "hooks": p.hooks} for p in rows])
        return
    if not rows:
        env.echo("no plugins loaded")
        return
    width = max(len(p.name) for p in rows) + 2
    for p in rows:
        env.echo(f"{p.name.ljust(width)}{p.version:<10} {p.source:<16} {', '.join(p.hooks) or '-'}")
    if plugins.disabled:
        env.echo(f"disabled: {', '.join(sorted(plugins.disabled))} (PAAS_DISABLED_PLUGINS)")
