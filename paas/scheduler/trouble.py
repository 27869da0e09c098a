"""Crash loops and OOM kills, as the schedulers' converge passes see them: each is news once.

docker-local restarts a crashed container itself (restart policy, growing delay) and counts its
restarts; swarm starts a new task in the slot and keeps the failed ones for a while. Either way
nobody is told: a process restarted CRASH_LOOP_RESTARTS times within CRASH_LOOP_SECONDS is a
crash loop, reported once until it settles (a whole window without a restart).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import datetime

from paas.core import names
from paas.scheduler.interface import Trouble

CRASH_LOOP_RESTARTS = 3
CRASH_LOOP_SECONDS = 300.0

_lock = threading.Lock()
# Per app, and only what the last pass saw (nothing grows with time): the FinishedAt of each
# container's OOM kill already reported, the restart counts seen within the window, and the
# processes whose crash loop was reported (news again once they settle).
_oom_seen: dict[str, dict[str, str]] = {}  # app -> container id -> FinishedAt
_restarts: dict[str, dict[str, list[tuple[float, int]]]] = {}  # app -> container -> (when, count)
_looping: dict[str, set[str]] = {}  # app -> container ids, or "<service id>/<slot>"


def _dyno(labels: dict[str, str]) -> str:
    return f"{labels.get(names.LABEL_TYPE)}.{labels.get(names.LABEL_INDEX)}"


def _loop(dyno: str, grew: int) -> Trouble:
    detail = f"{dyno} restarted {grew} times in {int(CRASH_LOOP_SECONDS // 60)} minutes"
    return Trouble(dyno, "crash-loop", detail, f"{dyno} is crash-looping")


def containers(app: str, found: Iterable, now: float | None = None) -> list[Trouble]:
    """From docker-local's containers (their State and RestartCount, as listed)."""
    now = time.monotonic() if now is None else now
    out = []
    found = list(found)
    with _lock:
        oom_before, oom_after = _oom_seen.get(app, {}), {}
        for c in found:
            state = c.attrs.get("State", {})
            finished = state.get("FinishedAt", "")
            if state.get("OOMKilled"):
                oom_after[c.id] = finished
            if state.get("OOMKilled") and oom_before.get(c.id) != finished:
                dyno = _dyno(c.labels)
                out.append(
                    Trouble(dyno, "oom-killed", f"{dyno} passed its memory limit", f"{dyno} was OOM-killed")
                )
        _oom_seen[app] = oom_after
        looping = _looping.setdefault(app, set())
        before = _restarts.get(app, {})
        after: dict[str, list[tuple[float, int]]] = {}
        for c in found:
            count = int(c.attrs.get("RestartCount", 0) or 0)
            seen = [(t, n) for t, n in before.get(c.id, []) if now - t <= CRASH_LOOP_SECONDS]
            if not seen or seen[-1][1] != count:
                seen.append((now, count))
            after[c.id] = seen
            grew = count - seen[0][1]
            if len(seen) == 1:
                looping.discard(c.id)  # no restart for a whole window: a new loop is news again
            if grew >= CRASH_LOOP_RESTARTS and c.id not in looping:
                looping.add(c.id)
                out.append(_loop(_dyno(c.labels), grew))
        looping.intersection_update(after)  # containers gone
        _restarts[app] = after
    return out


def slots(
    app: str, ended: dict[str, tuple[dict[int, str], list[tuple[int, datetime]]]], now: datetime
) -> list[Trouble]:
    """From an app's swarm services: per service id, its slots' dynos and the (slot, when) of its
    tasks that ended on their own (swarm keeps a few per slot, more than CRASH_LOOP_RESTARTS); a
    slot with that many within the window is in a crash loop."""
    out = []
    with _lock:
        before = _looping.get(app, set())
        looping = set()
        for service_id, (dyno_of, tasks) in ended.items():
            recent: dict[int, int] = {}
            for slot, when in tasks:
                if (now - when).total_seconds() <= CRASH_LOOP_SECONDS:
                    recent[slot] = recent.get(slot, 0) + 1
            for slot, dyno in dyno_of.items():
                key, failed = f"{service_id}/{slot}", recent.get(slot, 0)
                if failed and key in before:
                    looping.add(key)  # the same loop: reported already
                elif failed >= CRASH_LOOP_RESTARTS:
                    looping.add(key)
                    out.append(_loop(dyno, failed))
        _looping[app] = looping  # settled slots and removed services are dropped
    return out
