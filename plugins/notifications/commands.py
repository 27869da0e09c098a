"""notifications:add/list/remove/test/log: parse and render only (rules in service.py)."""

from __future__ import annotations

import time

import click

from paas.plugin_api import FORMAT_OPTION, CommandEnv, PaasError, define

from . import service

ALL_OPTION = click.option("--all", "every", is_flag=True, help="The platform-wide webhooks (admins).")


def _scope(app: str | None, every: bool) -> str | None:
    if every == (app is not None):
        raise PaasError("name an app, or --all for the platform-wide webhooks (not both)")
    return app


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _outcome(d: dict | None) -> str:
    if d is None:
        return "never sent"
    status = f"HTTP {d['last_status']}" if d["last_status"] else (d["last_error"] or "not tried yet")
    retry = f", retry at {_when(d['next_at'])} UTC" if d["state"] == "pending" and d["attempts"] else ""
    return f"{d['event']} {d['state']} after {d['attempts']} attempt(s): {status}{retry}"


@define(
    "notifications:add",
    "Send an app's events (or with --all every app's and the platform's) to a webhook URL, signed.",
    permission="manage",
)
@click.argument("words", nargs=-1, required=True, metavar="[APP] URL")
@ALL_OPTION
@click.option("--events", help="Comma-separated: " + ", ".join(service.EVENTS) + " (default: all).")
@click.option("--slack", is_flag=True, help='Send Slack\'s {"text": ...} instead of the JSON event.')
@FORMAT_OPTION
def add(
    env: CommandEnv, words: tuple[str, ...], every: bool, events: str | None, slack: bool, fmt: str
) -> None:
    if len(words) != (1 if every else 2):
        raise PaasError("usage: notifications:add <app> <url> | notifications:add --all <url>")
    app, url = (None, words[0]) if every else (words[0], words[1])
    hook = service.add(env.ctx, app, url, events, slack)
    if fmt == "json":
        env.json(
            {"id": hook.id, "app": hook.app, "url": hook.url, "events": hook.events, "secret": hook.secret}
        )
        return
    env.echo(f"-----> Webhook {hook.id} for {hook.app or 'every app'}: {hook.url} ({hook.events})")
    env.echo(f"       Signing secret (shown once): {hook.secret}")
    env.echo(
        "       Receivers verify webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks)."
    )


@define(
    "notifications:list",
    "List an app's webhooks (or the platform-wide ones with --all) and their last delivery.",
    permission="manage",
)
@click.argument("app", required=False)
@ALL_OPTION
@FORMAT_OPTION
def list_hooks(env: CommandEnv, app: str | None, every: bool, fmt: str) -> None:
    rows = service.list_hooks(env.ctx, _scope(app, every))
    if fmt == "json":
        env.json(rows)
        return
    if not rows:
        env.echo(f"no webhooks for {app or 'every app'}")
        return
    for r in rows:
        env.echo(f"{r['id']:>4}  {r['url']}  [{','.join(r['events'])}] {r['format']}")
        env.echo(f"      last: {_outcome(r['last_delivery'])}")


@define(
    "notifications:remove", "Remove a webhook by its id (notifications:list shows them).", permission="manage"
)
@click.argument("words", nargs=-1, required=True, metavar="[APP] ID")
@ALL_OPTION
def remove(env: CommandEnv, words: tuple[str, ...], every: bool) -> None:
    if len(words) != (1 if every else 2) or not words[-1].isdigit():
        raise PaasError("usage: notifications:remove <app> <id> | notifications:remove --all <id>")
    service.remove(env.ctx, None if every else words[0], int(words[-1]))
    env.echo(f"-----> Webhook {words[-1]} removed")


@define(
    "notifications:test",
    "Send a test event to an app's webhooks (or one: --id) now, and say what came back.",
    permission="manage",
)
@click.argument("app", required=False)
@ALL_OPTION
@click.option("--id", "hook_id", type=int, help="Only this webhook.")
@FORMAT_OPTION
def test(env: CommandEnv, app: str | None, every: bool, hook_id: int | None, fmt: str) -> int:
    results = service.test(env.ctx, _scope(app, every), hook_id)
    if fmt == "json":
        env.json(results)
    else:
        for r in results:
            env.echo(f"{r['hook']:>4}  {r['url']}: {_outcome(r)}")
    return 0 if all(r["state"] == "delivered" for r in results) else 1


@define(
    "notifications:log",
    "The delivery log: an app's (or --all) newest deliveries and every attempt.",
    permission="manage",
)
@click.argument("app", required=False)
@ALL_OPTION
@click.option("-n", "limit", type=int, default=20, help="How many deliveries (1-1000).")
@FORMAT_OPTION
def log(env: CommandEnv, app: str | None, every: bool, limit: int, fmt: str) -> None:
    rows = service.log(env.ctx, _scope(app, every), limit)
    if fmt == "json":
        env.json(rows)
        return
    if not rows:
        env.echo("no deliveries yet")
    for r in rows:
        env.echo(f"{_when(r['created_at'])}  {r['id']}  hook {r['hook']}  {_outcome(r)}")
        for t in r["tries"]:
            what = f"HTTP {t['status']}" if t["status"] else t["error"]
            env.echo(f"    {_when(t['at'])}  {what} ({t['seconds'] * 1000:.0f} ms)")


COMMANDS = [add, list_hooks, remove, test, log]
