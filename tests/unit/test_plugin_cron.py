"""The cron plugin without docker: schedule checks, job ids, and the tick rules on a fake clock."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paas import commands
from paas.core import manifest
from paas.core.context import Context
from paas.core.manifest import PushedSource
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.plugins import PluginError, plugins
from paas.settings import Settings
from paas.store import App, Store

plugins(set())  # loads the built-in plugins, which makes the `paas_plugins` package importable
from paas_plugins.cron import jobs, service, ticker  # noqa: E402

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """A launch that records each run; `hold` keeps runs going until released."""

    def __init__(self, hold: bool = False) -> None:
        self.runs: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, app: App, job: jobs.Job) -> int:
        self.runs.append((app.name, job.id))
        self.started.set()
        self.release.wait(10)
        return 0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "paas.db")


def every_minute(command: str = "echo hi") -> jobs.Job:
    return jobs.parse_entries([jobs.CronEntry(command, "* * * * *")])[0]


# schedules and ids


@pytest.mark.parametrize(
    "schedule", ["@daily", "@hourly", "@weekly", "*/5 * * * *", "0 3 * * 1-5", "30 2 1 * *"]
)
def test_valid_schedules_are_taken(schedule: str) -> None:
    (job,) = jobs.parse_entries([jobs.CronEntry("python manage.py clearsessions", schedule)])
    assert job.schedule == schedule


@pytest.mark.parametrize(
    "schedule",
    ["61 * * * *", "* * * *", "* * * * * *", "0 0 * * * * 2030", "@every 5m", "@reboot", "bad", "0 0 31 2 *"],
)
def test_a_bad_schedule_names_the_index_of_its_entry(schedule: str) -> None:
    entries = [jobs.CronEntry("echo ok", "@daily"), jobs.CronEntry("echo bad", schedule)]
    with pytest.raises(PaasError) as err:
        jobs.parse_entries(entries)
    assert str(err.value) == f"app.json cron[1]: invalid schedule '{schedule}'"


def test_the_same_entry_twice_is_refused() -> None:
    with pytest.raises(PaasError, match=r"cron\[2\]: same schedule and command as cron\[0\]"):
        jobs.parse_entries(
            [jobs.CronEntry("a", "@daily"), jobs.CronEntry("b", "@daily"), jobs.CronEntry("a", "@daily")]
        )


def test_job_ids_are_short_stable_and_differ_by_schedule_and_command() -> None:
    a = jobs.job_id("@daily", "python manage.py clearsessions")
    assert a == jobs.job_id("@daily", "python manage.py clearsessions")
    assert jobs.ID_PATTERN.match(a)
    assert len({a, jobs.job_id("@hourly", "python manage.py clearsessions"), jobs.job_id("@daily", "x")}) == 3
    assert jobs.check_id(a) == a
    with pytest.raises(PaasError, match="invalid cron id"):
        jobs.check_id("../etc")


def test_due_is_the_latest_tick_at_or_before_now() -> None:
    job = every_minute()
    assert job.due(T0) == T0
    assert job.due(T0 + timedelta(seconds=59.9)) == T0
    assert job.due(T0 - timedelta(microseconds=1)) == T0 - timedelta(minutes=1)
    assert job.next_after(T0) == T0 + timedelta(minutes=1)


def test_a_push_with_a_bad_schedule_is_refused_by_the_plugin(tmp_path: Path) -> None:
    data = {
        "cron": [{"command": "echo a", "schedule": "@daily"}, {"command": "echo b", "schedule": "61 * * * *"}]
    }
    source = PushedSource("0" * 40, manifest.from_data(data), lambda path: None)
    with pytest.raises(PluginError) as err:
        plugins(set()).call_pre("paas_pre_build", ctx=None, app=None, source=source, log=BuildLog())
    assert "cron: app.json cron[1]: invalid schedule '61 * * * *'" in str(err.value)
    good = manifest.from_data({"cron": [{"command": "echo a", "schedule": "* * * * *"}]})
    log = BuildLog()
    plugins(set()).call_pre(
        "paas_pre_build", ctx=None, app=None, source=PushedSource("0" * 40, good, lambda p: None), log=log
    )
    assert "Cron: 1 job(s)" in log.text()
    bad = PushedSource("0" * 40, manifest.from_data({"cron": {"command": "x"}}), lambda p: None)
    with pytest.raises(PluginError, match=r"cron: app.json: cron must be a list"):
        plugins(set()).call_pre("paas_pre_build", ctx=None, app=None, source=bad, log=BuildLog())


def test_the_plugin_names_its_app_json_key() -> None:
    """`cron` is the plugin's (issue 28): the core neither parses it nor, with the plugin on,
    calls it ignored; with the plugin off, the build log says nothing reads it."""
    m = manifest.from_data({"cron": [{"command": "echo a", "schedule": "@daily"}], "watch": {}})
    assert "cron" in plugins(set()).app_json_keys() and "watch" in plugins(set()).app_json_keys()
    assert m.ignored_keys(plugins(set()).app_json_keys()) == []
    assert m.ignored_keys() == ["cron", "watch"]
    assert not hasattr(m, "cron")


# the tick rules


def test_a_new_job_starts_at_its_next_tick_and_runs_once_per_tick(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0 + timedelta(seconds=30))
    launch = Recorder()
    s = ticker.Scheduler(store, launch, clock)
    s.tick([(app, [job])])
    assert launch.runs == []  # the 10:00 tick was before the job was known
    for _ in range(3):  # passes inside the same minute
        clock.advance(10)
        s.tick([(app, [job])])
        s.wait_idle()
    assert launch.runs == [("web", job.id)]  # the 10:01 tick, once
    for _ in range(12):  # two more minutes, a pass every 10 s
        clock.advance(10)
        s.tick([(app, [job])])
        s.wait_idle()
    assert launch.runs == [("web", job.id)] * 3


def test_ticks_passed_during_one_slow_pass_collapse_into_one_run(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0)
    launch = Recorder()
    s = ticker.Scheduler(store, launch, clock)
    s.tick([(app, [job])])
    clock.advance(5 * 60 + 1)
    s.tick([(app, [job])])
    s.wait_idle()
    assert len(launch.runs) == 1


def test_a_restart_neither_replays_missed_ticks_nor_repeats_a_handled_one(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0 - timedelta(seconds=1))
    launch = Recorder()
    first = ticker.Scheduler(store, launch, clock)
    first.tick([(app, [job])])
    clock.advance(2)  # 10:00:01
    first.tick([(app, [job])])
    first.wait_idle()
    assert len(launch.runs) == 1
    # The server restarts within the same minute: 10:00 was handled, so it does not run again.
    clock.advance(5)
    again = ticker.Scheduler(store, launch, clock)
    again.tick([(app, [job])])
    again.wait_idle()
    assert len(launch.runs) == 1
    # Down from 10:00:06 to 10:03:20: the ticks of 10:01, 10:02 and 10:03 are skipped, not replayed.
    clock.now = T0 + timedelta(minutes=3, seconds=20)
    later = ticker.Scheduler(store, launch, clock)
    actions = later.tick([(app, [job])])
    later.wait_idle()
    assert len(launch.runs) == 1
    assert any("skipped the tick of 2026-12-01T10:03:00+00:00 (no server was running" in a for a in actions)
    assert ticker.load_state(store, app)[job.id] == T0 + timedelta(minutes=3)
    clock.advance(60)  # 10:04:20: the first tick since this server started
    later.tick([(app, [job])])
    later.wait_idle()
    assert len(launch.runs) == 2


def test_a_tick_while_the_previous_run_goes_is_skipped_and_recorded(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0 - timedelta(seconds=1))
    launch = Recorder(hold=True)
    s = ticker.Scheduler(store, launch, clock)
    s.tick([(app, [job])])
    clock.advance(2)
    s.tick([(app, [job])])
    assert launch.started.wait(5)
    clock.advance(60)  # 10:01:01, the 10:00 run still going
    actions = s.tick([(app, [job])])
    assert any(
        "skipped the tick of 2026-12-01T10:01:00+00:00: the previous run is still going" in a for a in actions
    )
    assert len(launch.runs) == 1
    assert [e["action"] for e in store.list_events(app="web")] == ["cron:skipped"]
    launch.release.set()
    s.wait_idle()
    clock.advance(60)  # 10:02:01: free again
    s.tick([(app, [job])])
    s.wait_idle()
    assert len(launch.runs) == 2


def test_a_run_elsewhere_counts_as_still_going(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0 - timedelta(seconds=1))
    launch = Recorder()
    s = ticker.Scheduler(store, launch, clock, busy_elsewhere=lambda a, j: True)
    s.tick([(app, [job])])
    clock.advance(2)
    s.tick([(app, [job])])
    s.wait_idle()
    assert launch.runs == []


def test_each_job_has_its_own_ticks_and_state_is_pruned(store: Store) -> None:
    app = store.create_app("web")
    minute, daily = every_minute("a"), jobs.parse_entries([jobs.CronEntry("b", "@daily")])[0]
    clock = FakeClock(T0 - timedelta(seconds=1))
    launch = Recorder()
    s = ticker.Scheduler(store, launch, clock)
    s.tick([(app, [minute, daily])])
    clock.advance(2)
    s.tick([(app, [minute, daily])])
    s.wait_idle()
    assert launch.runs == [("web", minute.id)]
    assert set(json.loads(store.get_setting(app.id, ticker.STATE_KEY))) == {minute.id, daily.id}
    s.tick([(app, [daily])])  # a push removed the minute job
    assert set(json.loads(store.get_setting(app.id, ticker.STATE_KEY))) == {daily.id}


def test_a_run_that_cannot_start_is_recorded_as_a_failure(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0 - timedelta(seconds=1))

    def broken(app: App, job: jobs.Job) -> int:
        raise PaasError("web has not been deployed yet")

    s = ticker.Scheduler(store, broken, clock)
    s.tick([(app, [job])])
    clock.advance(2)
    s.tick([(app, [job])])
    s.wait_idle()
    (event,) = store.list_events(app="web")
    assert event["action"] == "cron:failed" and "not been deployed" in event["detail"]


def test_a_pass_returns_while_runs_go_on(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0 - timedelta(seconds=1))
    launch = Recorder(hold=True)
    s = ticker.Scheduler(store, launch, clock)
    s.tick([(app, [job])])
    clock.advance(2)
    s.tick([(app, [job])])  # returns although the run is held
    assert launch.started.wait(5) and s.running(app, job)
    launch.release.set()
    s.wait_idle()
    assert not s.running(app, job)


# commands and the app's jobs


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


def test_jobs_come_from_the_current_release_and_commands_fail_in_one_line(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    app = ctx.store.create_app("web")
    assert run(ctx, "cron:list", "web") == (
        0,
        "web has no cron jobs in the app.json of its current release\n",
        "",
    )
    data = {"cron": [{"command": "echo hi", "schedule": "*/5 * * * *"}]}
    build = ctx.store.create_build(app.id, "0" * 40, "alice", data)
    release = ctx.store.create_release(app.id, build, {}, {}, "Deploy", "alice")
    ctx.store.set_release_status(release.id, "succeeded")
    (job,) = service.jobs_of(ctx, app)
    assert job.id == jobs.job_id("*/5 * * * *", "echo hi")
    code, _, err = run(ctx, "cron:run", "web", "nope")
    assert code == 1 and err.startswith("error: invalid cron id") and "Traceback" not in err
    code, _, err = run(ctx, "cron:run", "web", "0123456789")
    assert code == 1 and err == "error: web has no cron job 0123456789 (see cron:list web)\n"
    code, _, err = run(ctx, "cron:list", "nosuch")
    assert code == 1 and "does not exist" in err


class FakeContainer:
    def __init__(self, app: str, job: str, status: str) -> None:
        self.labels = {"paas.app": app, "paas.index": job, "paas.role": "cron"}
        self.status = status
        self.removed = False

    def stop(self, timeout: int) -> None:
        pass

    def remove(self, force: bool) -> None:
        self.removed = True


class FakeDocker:
    def __init__(self, found: list[FakeContainer]) -> None:
        self.found = found
        self.containers = self

    def list(self, all: bool, filters: dict, ignore_removed: bool = False) -> list[FakeContainer]:
        wanted = dict(f.split("=", 1) for f in filters["label"] if not f.startswith("paas.instance="))
        return [c for c in self.found if all and wanted.items() <= c.labels.items()]


def test_finished_runs_of_jobs_that_are_gone_are_removed_and_running_ones_kept(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    app = ctx.store.create_app("web")
    data = {"cron": [{"command": "echo hi", "schedule": "@daily"}]}
    build = ctx.store.create_build(app.id, "0" * 40, "alice", data)
    ctx.store.set_release_status(
        ctx.store.create_release(app.id, build, {}, {}, "Deploy", "alice").id, "succeeded"
    )
    current = jobs.job_id("@daily", "echo hi")
    kept = FakeContainer("web", current, "exited")  # the job's last run: its output
    gone = FakeContainer("web", "0123456789", "exited")  # a job app.json no longer has
    going = FakeContainer("old-name", "0123456789", "running")  # finishes first
    ctx._extra["docker"] = FakeDocker([kept, gone, going])
    assert service.reconcile(ctx) == ["removed 1 finished cron container(s) of jobs that are gone"]
    assert (kept.removed, gone.removed, going.removed) == (False, True, False)
    assert service.reconcile(ctx) == []  # cleanup runs once a minute, not on every pass
    assert service.scheduler(ctx) is service.scheduler(ctx)  # one per process


def test_dockerd_away_costs_one_failure_per_tick_not_a_retry_every_pass(store: Store) -> None:
    app = store.create_app("web")
    job = every_minute()
    clock = FakeClock(T0 - timedelta(seconds=1))

    def unreachable(app: App, job: jobs.Job) -> bool:
        raise ConnectionError("dockerd is not answering")

    def launch(app: App, job: jobs.Job) -> int:
        raise PaasError("cron job could not start: ConnectionError")

    s = ticker.Scheduler(store, launch, clock, busy_elsewhere=unreachable)
    s.tick([(app, [job])])
    for _ in range(5):
        clock.advance(2)
        s.tick([(app, [job])])
        s.wait_idle()
    assert [e["action"] for e in store.list_events(app="web")] == ["cron:failed"]


def test_a_pass_reads_each_build_once_and_passes_over_apps_without_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 200 apps a pass read every app's release, build and app.json and its cron state:
    now every app's release is read at once, a build's jobs are parsed once, and an app with no
    job and no state kept costs nothing until a release gives it jobs."""
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    plain, timed = ctx.store.create_app("plain"), ctx.store.create_app("timed")
    for app, data in ((plain, {}), (timed, {"cron": [{"command": "echo hi", "schedule": "* * * * *"}]})):
        build = ctx.store.create_build(app.id, "0" * 40, "alice", data)
        ctx.store.set_release_status(
            ctx.store.create_release(app.id, build, {}, {}, "Deploy", "alice").id, "succeeded"
        )
    builds: list[int] = []
    states: list[int] = []
    get_build, get_setting = ctx.store.get_build, ctx.store.get_setting
    monkeypatch.setattr(ctx.store, "get_build", lambda b: builds.append(b) or get_build(b))
    monkeypatch.setattr(ctx.store, "current_releases", lambda: pytest.fail("every release decoded"))
    monkeypatch.setattr(
        ctx.store, "get_setting", lambda app_id, key: states.append(app_id) or get_setting(app_id, key)
    )
    monkeypatch.setattr(service.runs, "remove_stale", lambda ctx, keep: 0)
    for _ in range(3):
        service.reconcile(ctx)
    assert sorted(builds) == sorted({b for b in builds})  # each build once
    assert len(builds) == 2
    assert states.count(plain.id) == 1 and states.count(timed.id) == 3
    data = {"cron": [{"command": "echo later", "schedule": "* * * * *"}]}
    build = ctx.store.create_build(plain.id, "1" * 40, "alice", data)
    ctx.store.set_release_status(
        ctx.store.create_release(plain.id, build, {}, {}, "Deploy", "alice").id, "succeeded"
    )
    service.reconcile(ctx)
    assert states.count(plain.id) == 2  # a release with jobs: looked at again
    assert set(ctx.shared("cron:jobs", dict)) == {build, ctx.store.current_release(timed.id).build_id}  # type: ignore[union-attr]
