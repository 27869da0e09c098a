"""The audit log: who changed what, when."""

from __future__ import annotations

from paas.core import validation
from paas.core.context import Context


def list_events(ctx: Context, limit: int = 50, app: str | None = None) -> list[dict]:
    if not 1 <= limit <= 10000:
        raise validation.PaasError("-n must be between 1 and 10000")
    if app is not None:
        validation.app_name(app)
    return ctx.store.list_events(limit, app)
