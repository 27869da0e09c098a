"""Query-string arguments shared by the pages and the API."""

from __future__ import annotations

from flask import request

from paas.errors import PaasError


def int_arg(name: str, default: int) -> int:
    """A whole-number query argument, or a one-line error naming it."""
    raw = request.args.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise PaasError(f"{name} must be a whole number, got {raw!r}") from None
