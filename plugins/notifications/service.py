"""Webhooks per app and platform-wide: the rules (commands only parse and render).

- `notifications:add <app> <url>` needs `manage` on the app; `--all` (every app and the
  platform's own events: backups, nodes, the dashboard's certificate) is for admins.
- Events: EVENTS below, or all of them. Each is queued per matching hook (from whichever process
  saw it) and sent by the server's worker; a failed attempt is retried after BACKOFF (then the
  delivery is marked failed), and every attempt is kept in the delivery log.
- Body: `{"type": ..., "timestamp": ..., "data": {...}}` (Standard Webhooks' shape), or with
  `--slack` a Slack-compatible `{"text": ...}`; both are signed (send.py).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from paas.plugin_api import Context, NotFound, PaasError, access

from . import send
from .store import Delivery, Hook, NotificationStore

EVENTS = (
    "deploy.started",
    "deploy.succeeded",
    "deploy.failed",
    "release.rolled_back",
    "process.crash_loop",
    "process.oom_killed",
    "certificate.expiring",
    "backup.failed",
    "node.down",
)
BACKOFF = (5, 30, 120, 600, 1800, 3600, 3 * 3600)  # seconds before each retry: 8 attempts in ~5 h
HOLD = 60.0  # a claimed delivery is not sent by another sender for this long
MAX_HOOKS = 20  # per app, and platform-wide


def store(ctx: Context) -> NotificationStore:
    return ctx.shared(
        "notifications-store",
        lambda: NotificationStore(ctx.settings.plugins_dir / "notifications" / "notifications.db"),
    )


def _scope(ctx: Context, app_name: str | None, operation: str) -> str | None:
    """The app the actor may manage the hooks of, or None for the platform-wide ones (admins)."""
    if app_name is None:
        access.require_admin(ctx, operation, f"run {operation} --all")
        return None
    return access.authorize(ctx, app_name, operation).name


def parse_events(text: str | None) -> str:
    if text is None or text.strip() in ("", "*", "all"):
        return "*"
    wanted = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in wanted if e not in EVENTS]
    if unknown:
        raise PaasError(f"unknown event {unknown[0]!r}; events: {', '.join(EVENTS)}")
    return ",".join(e for e in EVENTS if e in wanted)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def add(ctx: Context, app_name: str | None, url: str, events: str | None, slack: bool) -> Hook:
    app = _scope(ctx, app_name, "notifications:add")
    admin = access.is_admin(ctx)
    send.check(url, private_ok=admin)
    if len(store(ctx).hooks(app, include_all=False)) >= MAX_HOOKS:
        raise PaasError(f"at most {MAX_HOOKS} webhooks per app (and platform-wide): remove one first")
    hook = store(ctx).add_hook(
        app,
        url,
        new_secret(),
        parse_events(events),
        "slack" if slack else "standard",
        ctx.actor,
        admin,
        time.time(),
    )
    ctx.store.add_event(app, ctx.actor, "notifications:add", f"{hook.id} {hook.events}")
    return hook


def list_hooks(ctx: Context, app_name: str | None) -> list[dict]:
    app = _scope(ctx, app_name, "notifications:list")
    out = []
    for h in store(ctx).hooks(app, include_all=False):
        last = store(ctx).deliveries([h.id], 1)
        out.append(
            {
                "id": h.id,
                "app": h.app,
                "url": h.url,
                "events": h.event_list or ["*"],
                "format": h.format,
                "created_by": h.created_by,
                "last_delivery": _delivery_json(last[0]) if last else None,
            }
        )
    return out


def _hook_of(ctx: Context, app_name: str | None, hook_id: int, operation: str) -> Hook:
    app = _scope(ctx, app_name, operation)
    hook = store(ctx).hook(hook_id)
    if hook is None or hook.app != app:
        raise NotFound(f"no webhook {hook_id} for {app or '--all'}")
    return hook


def remove(ctx: Context, app_name: str | None, hook_id: int) -> None:
    hook = _hook_of(ctx, app_name, hook_id, "notifications:remove")
    store(ctx).remove_hook(hook.id)
    ctx.store.add_event(hook.app, ctx.actor, "notifications:remove", str(hook.id))


def _delivery_json(d: Delivery) -> dict:
    return {
        "id": d.id,
        "event": d.event,
        "app": d.app,
        "state": d.state,
        "attempts": d.attempts,
        "created_at": d.created_at,
        "next_at": d.next_at if d.state == "pending" else None,
        "last_status": d.last_status,
        "last_error": d.last_error,
    }


def log(ctx: Context, app_name: str | None, limit: int = 50) -> list[dict]:
    """The delivery log: the newest deliveries of the app's (or the platform-wide) hooks."""
    if not 1 <= limit <= 1000:
        raise PaasError("-n must be from 1 to 1000")
    app = _scope(ctx, app_name, "notifications:log")
    hooks = store(ctx).hooks(app, include_all=False)
    return [
        {**_delivery_json(d), "hook": d.hook_id, "tries": store(ctx).attempts(d.id)}
        for d in store(ctx).deliveries([h.id for h in hooks], limit)
    ]


# events
def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(hook: Hook, event: str, summary: str, data: dict[str, Any], at: float) -> str:
    if hook.format == "slack":
        return json.dumps({"text": summary})
    return json.dumps({"type": event, "timestamp": _iso(at), "data": {"summary": summary, **data}})


def notify(
    ctx: Context, app: str | None, event: str, summary: str, data: dict[str, Any] | None = None
) -> list[str]:
    """Queue `event` for the app's hooks and the platform-wide ones (app None: those only).
    Returns the delivery ids; the server's worker sends them within a second or so."""
    if event not in EVENTS and event != "test":
        raise PaasError(f"unknown event {event!r}")
    now = time.time()
    ids = []
    for hook in store(ctx).hooks(app, include_all=True):
        if not hook.wants(event):
            continue
        msg_id = "msg_" + secrets.token_hex(12)
        store(ctx).enqueue(
            msg_id, hook, event, app, _body(hook, event, summary, {"app": app, **(data or {})}, now), now
        )
        ids.append(msg_id)
    return ids


def test(ctx: Context, app_name: str | None, hook_id: int | None) -> list[dict]:
    """`notifications:test`: a `test` event to the app's hooks (or one), sent now; retried like any."""
    app = _scope(ctx, app_name, "notifications:test")
    hooks = (
        [_hook_of(ctx, app_name, hook_id, "notifications:test")] if hook_id else store(ctx).hooks(app, False)
    )
    if not hooks:
        raise PaasError(f"no webhooks for {app or '--all'}: add one with notifications:add")
    now = time.time()
    results = []
    for hook in hooks:
        msg_id = "msg_" + secrets.token_hex(12)
        summary = f"test from paas for {app or 'every app'} (by {ctx.actor or 'root'})"
        store(ctx).enqueue(msg_id, hook, "test", app, _body(hook, "test", summary, {"app": app}, now), now)
        delivered = attempt(ctx, msg_id)
        results.append({"hook": hook.id, "url": hook.url, **_delivery_json(delivered)})
    return results


# sending
def attempt(ctx: Context, delivery_id: str, now: float | None = None) -> Delivery:
    """One attempt at a delivery (claimed first, so it is never sent twice at once)."""
    s = store(ctx)
    now = time.time() if now is None else now
    d = s.claim(delivery_id, now, HOLD)
    if d is None:
        return s.delivery(delivery_id)  # type: ignore[return-value]
    return _send(s, d, now)


def _send(s: NotificationStore, d: Delivery, now: float) -> Delivery:
    hook = s.hook(d.hook_id)
    if hook is None:  # removed meanwhile: the cascade drops its deliveries
        return d
    outcome = send.post(hook.url, hook.secret, d.id, d.payload.encode(), private_ok=bool(hook.by_admin))
    tries = d.attempts + 1
    if outcome.ok:
        state, next_at = "delivered", now
    elif tries > len(BACKOFF):
        state, next_at = "failed", now
    else:
        state, next_at = "pending", now + BACKOFF[tries - 1]
    s.record_attempt(d.id, now, outcome.status, outcome.error, outcome.seconds, state, next_at)
    return s.delivery(d.id) or d


def send_due(ctx: Context, pool: ThreadPoolExecutor, now: float | None = None) -> int:
    """The server worker's pass: every delivery that is due, one attempt each (a few at once: a
    receiver that hangs holds one sender for its timeout, not the others)."""
    s = store(ctx)
    now = time.time() if now is None else now
    due = s.claim_due(now, HOLD)
    list(pool.map(lambda d: _send(s, d, now), due))
    return len(due)
