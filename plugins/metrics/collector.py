"""What `paas server` runs for the metrics (threads started by `paas_server_started`):

- requests: read the router's metrics log every second, count each line into its app, release
  and 10 s bucket, and every FLUSH_SECONDS add the counts to the history with the log position
  (one transaction), then judge the watched releases;
- processes: every SAMPLE_SECONDS, docker's stats of every running app process (the core's
  sampler, which the app page's live chart uses too), summed per app and process type.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from paas.core import validation
from paas.plugin_api import BuildLog, Conflict, Context, PaasError
from paas.services import metrics as process_metrics
from paas.services import processes, releases

from . import service
from . import watch as watch_rules
from .follow import Follower
from .history import TIERS, History, Watch
from .stats import Stats, parse

log = logging.getLogger("paas.metrics")
READ_SECONDS = 1.0
FLUSH_SECONDS = 5.0
SAMPLE_SECONDS = 10.0
PRUNE_SECONDS = 60.0
BUCKET = TIERS[0][0]


def count(lines: list[str], into: dict[tuple[str, int, int], Stats], oldest: float) -> int:
    """Add each metrics line to its (app, release, bucket); malformed or too old ones are skipped.

    Once per request, so cheap: a line is only cut at its time (which picks the bucket) and at its
    request time (not counted); lines alike in the rest (the app, release, status, size and
    upstream time, to the millisecond: most of a busy app's) are tallied per bucket, and each
    such shape is parsed once."""
    tally: dict[tuple[str, int], int] = {}
    for text in lines:
        at_text, _, rest = text.partition(" ")
        try:
            at = float(at_text)
            bucket = int(at) - int(at) % BUCKET
        except (ValueError, OverflowError):
            continue
        if at < oldest:
            continue
        key = (rest.rpartition(" ")[0], bucket)
        tally[key] = tally.get(key, 0) + 1
    counted = 0
    names: dict[str, bool] = {}
    for (shape, bucket), n in tally.items():
        line = parse(f"{bucket} {shape} -")  # the same fields, with the bucket for the time
        if line is None:
            continue
        valid = names.get(line.app)
        if valid is None:
            valid = names[line.app] = validation.APP_NAME_RE.fullmatch(line.app) is not None
        if not valid:
            continue
        stats = into.get((line.app, line.release, bucket))
        if stats is None:
            stats = into[(line.app, line.release, bucket)] = Stats()
        stats.add(line.status, line.sent, line.upstream, n)
        counted += n
    return counted


class Requests:
    """The request counter and the watch's judge (one per server)."""

    def __init__(self, ctx: Context, hist: History) -> None:
        self.ctx = ctx
        self.history = hist
        self.follower = Follower(ctx.settings.metrics_log_path, hist.cursor())
        self.pending: dict[tuple[str, int, int], Stats] = {}
        self.flushed = 0.0
        self.pruned = 0.0
        self.counted = 0

    def step(self, now: float) -> None:
        self.counted += count(self.follower.read(), self.pending, now - TIERS[-1][1])
        if now - self.flushed < FLUSH_SECONDS:
            return
        self.flushed = now
        self.history.add_requests(self.pending, self.follower.position, now)
        self.pending = {}
        judge(self.ctx, self.history, now)
        if now - self.pruned >= PRUNE_SECONDS:
            self.pruned = now
            self.history.prune(now)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(READ_SECONDS):
            try:
                self.step(time.time())
            except Exception:  # a bad pass never ends the counting
                log.exception("metrics: counting requests failed")
        self.follower.close()


def judge(ctx: Context, hist: History, now: float) -> list[tuple[Watch, str]]:
    """Each watched release: past its window it is kept; past a threshold it is rolled back (on a
    thread of its own: a deploy takes seconds). Returns the rollbacks started."""
    started = []
    for w in hist.watches(state="watching"):
        if now > w.ends_at:
            hist.set_watch_state(w.app, w.release, "kept", None, only_if="watching")
            continue
        settings, baseline = watch_rules.read_plan(w.plan)
        new = hist.release_stats(w.app, w.release, w.started_at)
        reason = watch_rules.verdict(new, baseline, settings, restarts(ctx, w))
        if reason is None:
            continue
        why = f"v{w.release} rolled back: {reason}"
        if hist.set_watch_state(w.app, w.release, "rolling-back", why, only_if="watching"):
            threading.Thread(
                target=roll_back, args=(ctx, hist, w, why), daemon=True, name="watch-rollback"
            ).start()
            started.append((w, why))
    return started


def restarts(ctx: Context, w: Watch) -> dict[str, int]:
    """Restarts of the watched release's processes (a crash loop after traffic moved)."""
    try:
        rows = processes.list_processes(ctx, w.app)
    except PaasError:
        return {}
    return {p.dyno: p.restarts for p in rows if p.release == w.release and p.restarts}


def roll_back(ctx: Context, hist: History, w: Watch, why: str) -> None:
    """Back to the release before, as `releases:rollback` does (zero-downtime), as the watch."""
    actor = ctx.for_actor(service.WATCH_ACTOR, is_admin=True)
    out = BuildLog(lambda text: log.info("%s: %s", w.app, text.rstrip()))
    try:
        releases.rollback(actor, w.app, f"v{w.previous}", out, reason=why, only_from=w.release)
    except Conflict:  # someone deployed meanwhile: theirs is watched now
        hist.set_watch_state(w.app, w.release, "superseded", why, only_if="rolling-back")
        return
    except Exception as exc:
        log.warning("%s: %s, and the rollback failed: %s", w.app, why, exc)
        actor.store.add_event(w.app, service.WATCH_ACTOR, "watch:rollback-failed", f"{why}; {exc}"[:300])
        hist.set_watch_state(
            w.app, w.release, "rollback-failed", f"{why}; rollback failed: {exc}"[:300], "rolling-back"
        )
        return
    hist.set_watch_state(w.app, w.release, "rolled-back", why, only_if="rolling-back")


def sample_processes(ctx: Context, hist: History, now: float) -> int:
    """One round: every app's running processes, summed per process type."""
    by_type: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for app_name, samples in process_metrics.sample_round(ctx, now).items():
        for s in samples:
            total = by_type[(app_name, s.dyno.split(".")[0])]
            total[0] += s.cpu_percent or 0.0
            total[1] += s.mem_bytes
    hist.add_processes(now, {k: (v[0], int(v[1])) for k, v in by_type.items()})
    return len(by_type)


def run_sampler(ctx: Context, hist: History, stop: threading.Event) -> None:
    while not stop.wait(SAMPLE_SECONDS):
        try:
            sample_processes(ctx, hist, time.time())
        except Exception:  # dockerd away for a moment: the next round tries again
            log.exception("metrics: sampling processes failed")


def start(ctx: Context, stop: threading.Event) -> None:
    hist = service.history(ctx)
    threading.Thread(
        target=Requests(ctx, hist).run, args=(stop,), daemon=True, name="metrics-requests"
    ).start()
    threading.Thread(
        target=run_sampler, args=(ctx, hist, stop), daemon=True, name="metrics-processes"
    ).start()
