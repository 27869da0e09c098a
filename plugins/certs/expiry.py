"""Certificates about to end: `paas_certificate_expiring` once a day per certificate while it
ends within EXPIRY_DAYS (a renewal that keeps failing, or a manual one nobody replaced)."""

from __future__ import annotations

import datetime as dt
import time

from paas.plugin_api import Context

from . import service

EXPIRY_DAYS = 14
CHECK_SECONDS = 3600.0  # reading every certificate is cheap, but not on every reconcile pass
S_WARNED = "certs.expiry_warned"  # the UTC date of the last warning
_last_check = {"at": 0.0}


def check(ctx: Context, now: dt.datetime | None = None, force: bool = False) -> list[str]:
    """The subjects warned about now (at most once an hour per server, once a day per subject)."""
    if not force and time.monotonic() - _last_check["at"] < CHECK_SECONDS:
        return []
    _last_check["at"] = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    today = now.date().isoformat()
    warned = []
    for s in service.all_subjects(ctx):
        info = service.current_info(s)
        if info is None or info.not_after - now > dt.timedelta(days=EXPIRY_DAYS):
            continue
        if service.get(ctx, s, S_WARNED) == today:
            continue
        service.put(ctx, s, S_WARNED, today)
        days = max(0, (info.not_after - now).days)
        when = f"{info.not_after:%Y-%m-%d %H:%M} UTC"
        ctx.store.add_event(s.event_app, "paas", "certs:expiring", f"{', '.join(info.sans)} ends {when}")
        ctx.plugins.call_post(
            "paas_certificate_expiring",
            ctx=ctx,
            app=s.app,
            hostnames=list(info.sans),
            not_after=info.not_after.isoformat(),
            days=days,
        )
        warned.append(s.name)
    return warned
