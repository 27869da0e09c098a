"""quota:set, quota:report: what each user may hold, and what they hold."""

from __future__ import annotations

import click

from paas.commands import FORMAT_OPTION, CommandEnv, command
from paas.services import quotas


def _render(env: CommandEnv, data: dict) -> None:
    env.echo(f"=====> {data['user']} quotas" + (" (admin: not held by them)" if data["admin"] else ""))
    for name, q in data["quotas"].items():
        used, limit = quotas.show(name, q["used"]), quotas.show(name, q["limit"])
        env.echo(f"       {name:<10} {used:>8} of {limit:<8}{'  (default)' if q['default'] else ''}")
    for app, parts in data["disk"].items():
        detail = " ".join(f"{part}={quotas.size_text(size)}" for part, size in sorted(parts.items()))
        env.echo(f"       disk of {app}: {detail}")


@command("quota:report", "Show your quotas and what you use of them (admins: any user's).")
@click.argument("user", required=False)
@FORMAT_OPTION
def report(env: CommandEnv, user: str | None, fmt: str) -> None:
    found = quotas.report(env.ctx, user)
    if fmt == "json":
        env.json(found if user is None and env.on_host else found[0])
        return
    for data in found:
        _render(env, data)


@command("quota:set", "Set a user's quotas (admins): quota:set <user> apps=5 memory=4g disk=default.")
@click.argument("user")
@click.argument("assignments", nargs=-1)
def set_(env: CommandEnv, user: str, assignments: tuple[str, ...]) -> None:
    data = quotas.set_quotas(env.ctx, user, list(assignments))
    env.echo(f"-----> Quotas of {data['user']} set")
    _render(env, data)
