"""The resource limits an app's containers get: server defaults, then the app's, then its type's.

Kept apart from resources.py (the resource:* commands, which deploy) so that container settings
can read them without a cycle.
"""

from __future__ import annotations

import json
import os

from docker.utils import parse_bytes

from paas.core.container import Limits
from paas.core.context import Context
from paas.errors import PaasError
from paas.settings import Settings
from paas.store import App

SETTING = "resource_limits"
ALL_TYPES = ""  # the key of the app-wide limits
MIN_MEMORY = 6 * 1024 * 1024  # docker's own minimum
MIN_PIDS, MAX_PIDS = 16, 100_000


def parse_memory(text: str) -> str:
    """`512m`, `1g`, `1.5g`, `262144k`: docker's size syntax, at least 6 MiB."""
    raw = (text or "").strip().lower()
    if raw.endswith("b") and raw[:-1][-1:].isalpha():
        raw = raw[:-1]  # 512mb -> 512m
    try:
        size = parse_bytes(raw)
    except Exception:  # docker raises its own errors for anything malformed
        size = None
    if not isinstance(size, int) or size < MIN_MEMORY:
        raise PaasError(f"invalid memory {text!r}: use a size like 256m or 1g (at least 6m)")
    return raw


def parse_cpus(text: str) -> float:
    try:
        cpus = float(text)
    except (TypeError, ValueError):
        cpus = -1.0
    cores = os.cpu_count() or 1
    if not 0.01 <= cpus <= cores:
        raise PaasError(f"invalid cpu {text!r}: use a number of cores from 0.01 to {cores}, e.g. 0.5")
    return round(cpus, 2)


def parse_pids(text: str) -> int:
    if not (str(text).isascii() and str(text).isdigit()) or not MIN_PIDS <= int(text) <= MAX_PIDS:
        raise PaasError(f"invalid pids {text!r}: use a whole number from {MIN_PIDS} to {MAX_PIDS}")
    return int(text)


def defaults(settings: Settings) -> Limits:
    return Limits(settings.default_memory, settings.default_cpus or None, settings.default_pids or None)


def stored(ctx: Context, app: App) -> dict[str, Limits]:
    raw = json.loads(ctx.store.get_setting(app.id, SETTING) or "{}")
    return {t: Limits(**v) for t, v in raw.items()}


def save(ctx: Context, app: App, limits: dict[str, Limits]) -> None:
    data = {
        t: lim.as_dict() for t, lim in limits.items() if any(v is not None for v in lim.as_dict().values())
    }
    ctx.store.set_setting(app.id, SETTING, json.dumps(data, sort_keys=True) if data else None)


def effective(
    ctx: Context, app: App, limits: dict[str, Limits] | None = None
) -> tuple[Limits, dict[str, Limits]]:
    """The app-wide limits (over the server defaults) and each type's own (over those); of the
    stored limits, or of `limits` (a change about to be saved: quotas ask what it would make)."""
    limits = stored(ctx, app) if limits is None else limits
    base = limits.get(ALL_TYPES, Limits()).over(defaults(ctx.settings))
    return base, {t: lim.over(base) for t, lim in limits.items() if t != ALL_TYPES}
