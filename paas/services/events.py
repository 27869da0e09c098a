"""The audit log: who changed what, when."""

from __future__ import annotations

from paas.core import validation
from paas.core.context import Context
from paas.services import access


def list_events(ctx: Context, limit: int = 50, app: str | None = None) -> list[dict]:
    """One app's events (for those who may view it), or those of every app the actor may view;
    admins see everything, access changes and denials included (they name no app), and the events
    of destroyed apps. Events are the app's by id: a new app of an old name starts with none."""
    if not 1 <= limit <= 10000:
        raise validation.PaasError("-n must be between 1 and 10000")
    if app is not None:
        return ctx.store.list_events(limit, access.authorize(ctx, app, "events"))
    if access.is_admin(ctx):
        return ctx.store.list_events(limit, None)
    ids = [a.id for a in access.visible_apps(ctx, ctx.store.list_apps())]
    return ctx.store.events_of_apps(ids, limit)
