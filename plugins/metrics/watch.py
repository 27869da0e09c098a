"""The post-deploy watch: for a window after a deploy, the new release's 5xx ratio and p95 against
the previous release's, and a rollback (zero-downtime, as `releases:rollback`) past the threshold.

The rule, in one place (`verdict`):
- nothing is decided before the new release answered `min_requests` requests;
- 5xx: rolled back when its ratio exceeds the previous release's by more than `max_5xx_ratio`
  (0.1: ten points; the baseline is 0 when the previous release had fewer requests than that);
- p95 of the upstream time: rolled back when it is more than `max_p95_factor` times the previous
  release's and at least P95_FLOOR slower (0 turns the p95 check off; no baseline, no check);
- a process of the new release restarted CRASH_LOOP_RESTARTS times (a crash loop after traffic
  moved) is rolled back too.

The baseline is the previous release's last hour before the deploy. Settings come from the
defaults, then app.json's `watch`, then `checks:watch` (what it set explicitly). The watch is on
by default for releases with web processes; `checks:watch <app> --off` turns it off.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from paas.plugin_api import PaasError

from .stats import Stats

P95_FLOOR = 0.1  # seconds: a p95 that grew less than this is noise, whatever the factor
CRASH_LOOP_RESTARTS = 3
BASELINE_SECONDS = 3600.0
SETTING = "metrics.watch"  # per-app setting: JSON of what checks:watch set explicitly


@dataclass(frozen=True)
class WatchSettings:
    enabled: bool = True
    window: int = 300  # seconds after the deploy
    max_5xx_ratio: float = 0.1  # over the baseline's ratio
    max_p95_factor: float = 3.0  # times the baseline's p95; 0 turns the check off
    min_requests: int = 30

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        p95 = f", p95 over {self.max_p95_factor:g}x" if self.max_p95_factor else ""
        return (
            f"{self.window} s after each deploy: roll back at 5xx over the previous release's"
            f" + {self.max_5xx_ratio * 100:g} points{p95}, once {self.min_requests} requests came"
        )


LIMITS: dict[str, tuple[float, float]] = {
    "window": (30, 3600),
    "max_5xx_ratio": (0.001, 1.0),
    "max_p95_factor": (0.0, 100.0),
    "min_requests": (1, 1_000_000),
}


def check_values(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validated settings from app.json's `watch` or the command's options; unknown keys refused."""
    known = {f.name: f.type for f in fields(WatchSettings)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise PaasError(f"{where}: unknown watch setting {key!r} (known: {', '.join(sorted(known))})")
        if key == "enabled":
            if not isinstance(value, bool):
                raise PaasError(f"{where}: watch.enabled must be true or false")
            out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PaasError(f"{where}: watch.{key} must be a number")
        low, high = LIMITS[key]
        if not low <= value <= high or (key == "max_p95_factor" and 0 < value < 1.1):
            extra = " (or 0: off)" if key == "max_p95_factor" else ""
            raise PaasError(f"{where}: watch.{key} must be from {low:g} to {high:g}{extra}")
        if key in ("window", "min_requests"):
            if value != int(value):
                raise PaasError(f"{where}: watch.{key} must be a whole number")
            value = int(value)
        out[key] = float(value) if key in ("max_5xx_ratio", "max_p95_factor") else value
    return out


def effective(manifest_watch: dict[str, Any] | None, explicit: str | None) -> WatchSettings:
    """Defaults < app.json (already validated at push) < checks:watch."""
    settings = WatchSettings()
    for layer in (manifest_watch or {}, json.loads(explicit) if explicit else {}):
        try:
            settings = replace(settings, **check_values(layer, "watch"))
        except PaasError:
            continue  # a layer that no longer validates (older rules) is ignored, not fatal
    return settings


def plan(settings: WatchSettings, baseline: Stats) -> str:
    """What a watch keeps: its settings and the baseline's numbers."""
    return json.dumps(
        {
            "settings": asdict(settings),
            "baseline": {
                "requests": baseline.requests,
                "errors": baseline.errors,
                "p95": baseline.percentile(0.95),
            },
        }
    )


def read_plan(text: str) -> tuple[WatchSettings, dict[str, Any]]:
    data = json.loads(text)
    return WatchSettings(**data["settings"]), data["baseline"]


def pct(ratio: float) -> str:
    value = ratio * 100
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def verdict(
    new: Stats, baseline: dict[str, Any], settings: WatchSettings, restarts: dict[str, int]
) -> str | None:
    """Why the new release must go (the words recorded and sent), or None to keep watching."""
    for dyno, count in sorted(restarts.items()):
        if count >= CRASH_LOOP_RESTARTS:
            return f"crash loop: {dyno} restarted {count} times"
    if new.requests < settings.min_requests:
        return None
    enough = baseline["requests"] >= settings.min_requests
    base_ratio = baseline["errors"] / baseline["requests"] if enough else 0.0
    if new.error_ratio - base_ratio > settings.max_5xx_ratio:
        return f"5xx {pct(new.error_ratio)} ({new.errors} of {new.requests}) vs {pct(base_ratio)} before"
    p95, base_p95 = new.percentile(0.95), baseline.get("p95")
    if settings.max_p95_factor and enough and p95 is not None and base_p95:
        if p95 > base_p95 * settings.max_p95_factor and p95 - base_p95 >= P95_FLOOR:
            return f"p95 {ms(p95)} vs {ms(base_p95)} before"
    return None
