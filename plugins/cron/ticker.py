"""When cron jobs run: once per tick, never two runs of one job at once, never a replay.

The choices, in one place:
- The last tick handled per job is persisted (the app setting `cron:last`, a JSON object
  {job id: tick}) *before* that tick's run starts: a crash right after may lose the run, never
  repeat it (at most once per tick, also across restarts).
- Ticks that fell while no server was running are skipped, not replayed: a tick runs only when
  it is at or after the moment this scheduler started (the server's start). Several ticks that
  passed during one slow pass collapse into one run, for the latest.
- A job seen for the first time (a push added it) starts at its next tick, not the one just past.
- A tick that comes while the job's previous run still goes is skipped, logged and recorded as
  an event. Runs go in threads, one per job at most, so a pass returns at once.
- Schedules are evaluated in UTC.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from paas.plugin_api import App
from paas.store import Store

from .jobs import Job

STATE_KEY = "cron:last"
log = logging.getLogger("paas.cron")

Clock = Callable[[], datetime]
Launch = Callable[[App, Job], int]  # runs the job to its end, returns its exit status
BusyElsewhere = Callable[[App, Job], bool]  # a run this process did not start (host CLI, earlier server)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def load_state(store: Store, app: App) -> dict[str, datetime]:
    """The last tick handled per job id (an unreadable value counts as none)."""
    raw = store.get_setting(app.id, STATE_KEY)
    try:
        data = json.loads(raw) if raw else {}
        return {str(k): datetime.fromisoformat(v) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


class Scheduler:
    """One per server process; `tick()` is called on every reconcile pass."""

    def __init__(
        self,
        store: Store,
        launch: Launch,
        clock: Clock = utcnow,
        busy_elsewhere: BusyElsewhere = lambda app, job: False,
    ) -> None:
        self.store = store
        self.launch = launch
        self.clock = clock
        self.busy_elsewhere = busy_elsewhere
        self.started = clock()
        self._threads: dict[tuple[int, str], threading.Thread] = {}
        self._lock = threading.Lock()
        # Apps with no job and no state kept: passed over until they have jobs (their state
        # was read every pass, one read per app for nothing).
        self._idle: set[int] = set()

    def tick(self, apps: Iterable[tuple[App, list[Job]]]) -> list[str]:
        """One pass over every app's jobs; returns what it did (for the server log and tests)."""
        now = self.clock()
        actions: list[str] = []
        apps = list(apps)
        self._idle &= {app.id for app, _ in apps}
        for app, jobs in apps:
            try:
                actions.extend(self._tick_app(app, jobs, now))
            except Exception:  # one app's trouble (a locked store, dockerd away) never stops the others
                log.exception("cron: pass for %s failed", app.name)
        return actions

    def _tick_app(self, app: App, jobs: list[Job], now: datetime) -> list[str]:
        if not jobs and app.id in self._idle:
            return []
        self._idle.discard(app.id)
        last = load_state(self.store, app)
        if not jobs and not last:
            self._idle.add(app.id)
            return []
        state: dict[str, datetime] = {}
        start: list[tuple[Job, datetime]] = []
        actions: list[str] = []
        for job in jobs:
            due = job.due(now)
            seen = last.get(job.id)
            state[job.id] = max(due, seen) if seen else due
            if seen is None or due <= seen:
                continue  # first seen (starts at its next tick), or this tick was handled already
            where = f"{app.name} cron {job.id}"
            if due < self.started:
                actions.append(f"{where}: skipped the tick of {iso(due)} (no server was running then)")
            elif self.running(app, job):
                actions.append(f"{where}: skipped the tick of {iso(due)}: the previous run is still going")
                self.store.add_event(app.name, "paas", "cron:skipped", f"{job.id} {iso(due)}: still running")
            else:
                start.append((job, due))
        if {k: iso(v) for k, v in state.items()} != {k: iso(v) for k, v in last.items()}:
            # Saved before any run starts: a tick is handled at most once, whatever happens next.
            self.store.set_setting(app.id, STATE_KEY, json.dumps({k: iso(v) for k, v in state.items()}))
        for job, due in start:
            self._start(app, job)
            actions.append(f"{app.name} cron {job.id}: started for the tick of {iso(due)}")
        for line in actions:
            log.info("cron: %s", line)
        return actions

    def running(self, app: App, job: Job) -> bool:
        with self._lock:
            thread = self._threads.get((app.id, job.id))
            if thread is not None and thread.is_alive():
                return True
        try:
            return self.busy_elsewhere(app, job)
        except Exception as exc:  # dockerd away: the run itself will fail and say so, once per tick
            log.warning("cron: cannot tell whether %s %s still runs: %s", app.name, job.id, exc)
            return False

    def _start(self, app: App, job: Job) -> None:
        thread = threading.Thread(target=self._run, args=(app, job), daemon=True, name=f"cron-{job.id}")
        with self._lock:
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
            self._threads[(app.id, job.id)] = thread
        thread.start()

    def _run(self, app: App, job: Job) -> None:
        try:
            self.launch(app, job)  # records its own failure events (a non-zero exit)
        except Exception as exc:  # could not start: not deployed, dockerd away, a plugin refused
            log.warning("cron: %s %s could not run: %s", app.name, job.id, exc)
            self.store.add_event(app.name, "paas", "cron:failed", f"{job.id}: {exc}"[:300])

    def wait_idle(self, timeout: float = 10) -> None:
        """Wait for the runs in flight (tests, shutdown)."""
        with self._lock:
            threads = list(self._threads.values())
        for t in threads:
            t.join(timeout)
