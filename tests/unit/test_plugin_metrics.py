"""The metrics plugin without docker: lines, histograms, the history's tiers, following a rotated
log, the watch's rule and judge, and the command's parsing."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from paas.core.context import Context
from paas.errors import PaasError
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())  # makes the `paas_plugins` package importable
from paas_plugins.metrics import collector, service, watch  # noqa: E402
from paas_plugins.metrics.follow import Follower  # noqa: E402
from paas_plugins.metrics.history import TIERS, History, Watch  # noqa: E402
from paas_plugins.metrics.stats import HISTOGRAM_BOUNDS, Stats, parse  # noqa: E402

T0 = 1_900_000_000.0  # a round 10 s bucket


def test_a_router_line_parses_with_retries_and_without_an_upstream() -> None:
    line = parse("1900000001.250 shop 7 200 512 0.004 0.005")
    assert line is not None and (line.app, line.release, line.status, line.sent) == ("shop", 7, 200, 512)
    assert line.upstream == pytest.approx(0.004)
    retried = parse("1900000001.250 shop - 502 300 2.000, 0.003 2.004")
    assert retried is not None and retried.release == 0 and retried.upstream == pytest.approx(2.003)
    assert parse("1900000001.250 shop - 503 200 - 0.000").upstream is None  # type: ignore[union-attr]
    for junk in (
        "",
        "nonsense",
        "x shop 7 200 1 0.1 0.1",
        "1.0 shop 7 2xx 1 0.1 0.1",
        "1.0 shop 7 200 1 0.1x 0.1",
        "1.0 shop 7 200 1 0.1, 0.x 0.1",
        "1.0 shop \u00b2 200 1 0.1 0.1",  # a digit to isdigit(), not to int()
    ):
        assert parse(junk) is None


def test_percentiles_come_from_merged_histograms() -> None:
    a, b = Stats(), Stats()
    for _ in range(90):
        a.add(200, 100, 0.004)  # in the (0.0025, 0.005] bucket
    for _ in range(10):
        b.add(500, 100, 0.9)  # in the (0.75, 1.0] bucket
    total = Stats().merge(a).merge(b)
    assert total.requests == 100 and total.errors == 10 and total.error_ratio == pytest.approx(0.1)
    assert 0.0025 <= total.percentile(0.5) <= 0.005  # type: ignore[operator]
    assert 0.75 <= total.percentile(0.95) <= 1.0  # type: ignore[operator]
    assert Stats().percentile(0.5) is None
    over = Stats()
    over.add(200, 1, 120.0)
    assert over.percentile(0.99) == HISTOGRAM_BOUNDS[-1]
    buckets = dict(total.cumulative())
    assert buckets["0.005"] == 90 and buckets["1.0"] == 100 and buckets["+Inf"] == 100
    assert Stats.histogram_from(total.histogram_text()) == total.histogram


def _stats(n: int, errors: int = 0, upstream: float = 0.01) -> Stats:
    s = Stats()
    for i in range(n):
        s.add(500 if i < errors else 200, 100, upstream)
    return s


def test_history_adds_into_every_tier_and_prunes_each_after_its_time(tmp_path: Path) -> None:
    h = History(tmp_path / "m.db")
    h.add_requests({("shop", 7, int(T0)): _stats(10, 1)}, (42, 1000), T0)
    h.add_requests({("shop", 7, int(T0) + 10): _stats(5)}, (42, 1500), T0 + 10)
    h.add_requests({("shop", 7, int(T0)): _stats(1)}, (42, 1600), T0 + 20)  # a late line: same bucket
    tens = h.request_points("shop", 10, T0 - 1)
    assert [(at, r, s.requests) for at, r, s in tens] == [(int(T0), 7, 11), (int(T0) + 10, 7, 5)]
    minute = h.request_points("shop", 60, T0 - 60)
    assert sum(s.requests for _, _, s in minute) == 16
    hour = h.request_points("shop", 3600, T0 - 3600)
    assert len(hour) == 1 and hour[0][2].requests == 16 and hour[0][2].errors == 1
    assert h.cursor() == (42, 1600)
    assert [(a, r, s.requests) for a, r, s in h.totals()] == [("shop", 7, 16)]
    # An hour and a bit later the 10 s rows are gone, the minutes stay.
    h.prune(T0 + TIERS[0][1] + 30)
    assert h.request_points("shop", 10, T0 - 1) == []
    assert sum(s.requests for _, _, s in h.request_points("shop", 60, T0 - 60)) == 16
    h.prune(T0 + TIERS[2][1] + 7200)
    assert h.request_points("shop", 3600, T0 - 3600) == []


def test_history_bounds_rows_per_release(tmp_path: Path) -> None:
    """Two days of steady traffic in 10 s buckets keeps at most one hour of them."""
    h = History(tmp_path / "m.db")
    for i in range(0, 2 * 86400, 600):  # a write every 10 min is enough to see the shape
        h.add_requests({("shop", 1, int(T0) + i): _stats(1)}, None, T0 + i)
        h.prune(T0 + i)
    rows = {step: len(h.request_points("shop", step, 0)) for step, _ in TIERS}
    assert rows[10] <= TIERS[0][1] // 600 + 2
    assert rows[60] <= TIERS[1][1] // 600 + 2
    assert rows[3600] <= 49  # two days in hours, T0 is not on the hour


def test_the_follower_reads_whole_lines_across_rotation_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("one\ntwo\nthr")
    f = Follower(path)
    assert f.read() == ["one", "two"]
    with open(path, "a") as fh:
        fh.write("ee\n")
    assert f.read() == ["three"]
    os.rename(path, tmp_path / "metrics.log.1")  # logrotate moves it; nginx keeps writing a moment
    with open(tmp_path / "metrics.log.1", "a") as fh:
        fh.write("late\n")
    path.write_text("four\n")
    assert f.read() == ["late", "four"]
    saved = f.position
    f.close()
    with open(path, "a") as fh:
        fh.write("five\n")
    again = Follower(path, saved)  # a restarted server: nothing twice, nothing lost
    assert again.read() == ["five"]
    path.write_text("")  # truncated
    assert again.read() == []
    path.write_text("six\n")
    assert again.read() == ["six"]


def test_the_watch_rule() -> None:
    s = watch.WatchSettings(min_requests=20, max_5xx_ratio=0.1, max_p95_factor=3.0)
    quiet = {"requests": 500, "errors": 1, "p95": 0.01}
    assert watch.verdict(_stats(19, 19), quiet, s, {}) is None  # too few to mean something
    reason = watch.verdict(_stats(760, 312), quiet, s, {})
    assert reason == "5xx 41% (312 of 760) vs 0.2% before"
    assert watch.verdict(_stats(100, 8), quiet, s, {}) is None  # below the threshold: kept
    noisy = {"requests": 500, "errors": 100, "p95": 0.01}  # 20% before: 25% now is not a jump
    assert watch.verdict(_stats(100, 25), noisy, s, {}) is None
    slow = watch.verdict(_stats(100, 0, upstream=0.4), quiet, s, {})
    assert slow is not None and slow.startswith("p95 ")
    assert watch.verdict(_stats(100, 0, upstream=0.02), quiet, s, {}) is None  # 2x and < 100 ms more
    assert (
        watch.verdict(_stats(100, 0, upstream=0.4), {"requests": 3, "errors": 0, "p95": 0.01}, s, {}) is None
    )
    assert watch.verdict(Stats(), quiet, s, {"web.1": 3}) == "crash loop: web.1 restarted 3 times"


def test_watch_settings_are_checked_and_layered() -> None:
    assert watch.check_values({"window": 60, "max_5xx_ratio": 0.2}, "x") == {
        "window": 60,
        "max_5xx_ratio": 0.2,
    }
    for bad in ({"window": 5}, {"window": 1.5e9}, {"max_5xx_ratio": "lots"}, {"nope": 1}, {"enabled": "yes"},
                {"max_p95_factor": 1.05}, {"window": float("nan")}, {"min_requests": 2.5}):  # fmt: skip
        with pytest.raises(PaasError):
            watch.check_values(bad, "app.json")
    both = watch.effective({"window": 120, "min_requests": 5}, json.dumps({"window": 60}))
    assert (both.window, both.min_requests, both.enabled) == (60, 5, True)
    assert watch.effective(None, json.dumps({"enabled": False})).describe() == "off"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("600", 600)]
)
def test_since(text: str, seconds: int) -> None:
    assert service.parse_since(text) == seconds


@pytest.mark.parametrize("text", ["0", "1y", "-1h", "61d", "1h;rm", "5s", "1.5h"])
def test_a_bad_since_is_one_line(text: str) -> None:
    with pytest.raises(PaasError, match="since"):
        service.parse_since(text)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context.open(Settings(data_dir=tmp_path / "data"), on_host=True, actor="root")


def _release(ctx: Context, app_id: int, version_status: str = "succeeded", web: int = 1):  # type: ignore[no-untyped-def]
    r = ctx.store.create_release(app_id, None, {}, {"web": web}, "Deploy abc", "alice")
    ctx.store.set_release_status(r.id, version_status)
    return ctx.store.get_release(app_id, r.version)


def test_a_deploy_is_watched_with_the_previous_release_as_baseline(ctx: Context) -> None:
    app = ctx.store.create_app("shop")
    v1 = _release(ctx, app.id)
    created = service.epoch(v1.created_at)
    service.history(ctx).add_requests(
        {("shop", 1, int(created - 600) // 10 * 10): _stats(200, 2)}, None, created
    )
    assert service.start_watch(ctx, app, v1) is None  # a first release has nothing to compare to
    v2 = _release(ctx, app.id)
    w = service.start_watch(ctx, app, v2, now=created + 5)
    assert w is not None and (w.release, w.previous, w.state) == (2, 1, "watching")
    settings, baseline = watch.read_plan(w.plan)
    assert settings.window == 300 and baseline["requests"] == 200 and baseline["errors"] == 2
    ctx.store.set_setting(app.id, watch.SETTING, json.dumps({"enabled": False}))
    assert service.start_watch(ctx, app, _release(ctx, app.id)) is None
    ctx.store.set_setting(app.id, watch.SETTING, None)
    assert service.start_watch(ctx, app, _release(ctx, app.id, web=0)) is None  # workers only
    assert service.start_watch(ctx.for_actor(service.WATCH_ACTOR, True), app, _release(ctx, app.id)) is None


def test_the_judge_rolls_back_once_and_keeps_a_quiet_release(ctx: Context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    h = service.history(ctx)
    plan = watch.plan(watch.WatchSettings(min_requests=20), _stats(100, 0))
    h.start_watch(Watch("bad", 8, 7, T0, T0 + 300, "watching", None, plan))
    h.start_watch(Watch("good", 3, 2, T0, T0 + 300, "watching", None, plan))
    h.add_requests({("bad", 8, int(T0)): _stats(60, 30), ("good", 3, int(T0)): _stats(60, 1)}, None, T0 + 10)
    rolled: list[tuple[str, str]] = []
    done = threading.Event()

    def fake_roll_back(ctx, hist, w, why):  # type: ignore[no-untyped-def]
        rolled.append((w.app, why))
        hist.set_watch_state(w.app, w.release, "rolled-back", why, only_if="rolling-back")
        done.set()

    monkeypatch.setattr(collector, "roll_back", fake_roll_back)
    monkeypatch.setattr(collector, "restarts", lambda ctx, w: {})
    started = collector.judge(ctx, h, T0 + 20)
    assert [w.app for w, _ in started] == ["bad"]
    assert done.wait(5)
    assert rolled == [("bad", "v8 rolled back: 5xx 50% (30 of 60) vs 0% before")]
    assert collector.judge(ctx, h, T0 + 25) == []  # decided once
    collector.judge(ctx, h, T0 + 301)  # the window ends: kept
    states = {w.app: (w.state, w.reason) for w in h.watches()}
    assert states == {"bad": ("rolled-back", rolled[0][1]), "good": ("kept", None)}


def test_counting_skips_foreign_and_old_lines() -> None:
    into: dict = {}
    lines = [
        f"{T0 + 1} shop 7 200 10 0.001 0.001",
        f"{T0 + 2} shop 7 503 10 - 0.001",
        f"{T0 - 10**8} shop 7 200 10 0.001 0.001",  # older than anything kept
        f"{T0 + 3} ../etc 7 200 10 0.001 0.001",
        f"{T0 + 4} ../etc 7 200 10 0.001 0.001",  # a name refused once is refused again
        "garbage",
        f"{T0 + 5} shop 8 200 10 0.001 0.001",
    ]
    assert collector.count(lines, into, oldest=T0 - 86400) == 3
    assert list(into) == [("shop", 7, int(T0)), ("shop", 8, int(T0))]
    assert into[("shop", 7, int(T0))].requests == 2 and into[("shop", 7, int(T0))].errors == 1


def test_lines_alike_count_as_many_requests_in_their_own_buckets() -> None:
    into: dict = {}
    lines = [f"{T0 + i * 0.5:.3f} shop 7 200 512 0.004 0.00{i % 9}" for i in range(30)]  # 15 s
    lines += [f"{T0 + 1:.3f} shop 7 200 512 0.004", f"{T0 + 2:.3f} shop 7 502 0 0.010, 0.002 0.012"]
    lines += [f"{T0}nan shop 7 200 1 0.1 0.1", "inf shop 7 200 1 0.1 0.1", "nan shop 7 200 1 0.1 0.1"]
    assert collector.count(lines, into, oldest=T0 - 86400) == 31
    first, second = into[("shop", 7, int(T0))], into[("shop", 7, int(T0) + 10)]
    assert (first.requests, second.requests) == (21, 10) and first.errors == 1
    assert first.bytes == 20 * 512 and first.timed == 21
    assert first.time_sum == pytest.approx(20 * 0.004 + 0.012)
    assert first.histogram[HISTOGRAM_BOUNDS.index(0.005)] == 20 and second.percentile(0.5) <= 0.005


def test_the_report_has_series_releases_and_markers(ctx: Context) -> None:
    app = ctx.store.create_app("shop")
    v1 = _release(ctx, app.id)
    now = service.epoch(v1.created_at) + 30
    service.history(ctx).add_requests(
        {
            ("shop", 1, int(now - 20) // 10 * 10): _stats(10, 1),
            ("shop", 0, int(now - 20) // 10 * 10): _stats(1),
        },
        None,
        now,
    )
    service.history(ctx).add_processes(now - 5, {("shop", "web"): (12.5, 50 << 20)})
    data = service.report(ctx, "shop", "1h", now=now)
    assert data["requests"]["requests"] == 11 and data["requests"]["5xx"] == 1
    assert [r["release"] for r in data["releases"]] == [1]  # untagged requests count, unlisted
    assert data["step"] == 10 and len(data["series"]) == 1
    assert data["processes"]["web"]["cpu_percent"] == 12.5
    assert [m["version"] for m in data["markers"]] == [1]
    json.dumps(data)  # the command's and the API's JSON


def test_a_viewer_of_another_app_sees_nothing(ctx: Context) -> None:
    ctx.store.create_app("secret")
    stranger = ctx.for_actor("mallory", is_admin=False)
    with pytest.raises(PaasError, match="does not exist"):
        service.report(stranger, "secret")
    with pytest.raises(PaasError):
        service.set_watch(stranger, "secret", {"enabled": False})
    with pytest.raises(PaasError, match="only an admin may run metrics:prometheus"):
        service.prometheus_text(stranger)


def test_process_sampling_sums_per_type(ctx: Context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A round: one listing of every process, each running one's files read, CPU % against its
    last sample, everything stored in one transaction; a stopped app is skipped, an app whose
    page sampled it just now gives those samples; the history gets the sums per type."""
    from paas.scheduler.inventory import ProcessRecord
    from paas.store import Sample

    for name in ("shop", "blog", "idle", "docs"):
        ctx.store.create_app(name)
    ctx.store.set_stopped(ctx.store.get_app("idle").id, True)  # type: ignore[union-attr]
    now = T0

    def proc(app: str, dyno: str, state: str = "running") -> ProcessRecord:
        ptype, index = dyno.split(".")
        return ProcessRecord(app, ptype, int(index), 1, state, f"c-{app}-{dyno}")

    listed = {
        "shop": [
            proc("shop", "web.1"),
            proc("shop", "web.2"),
            proc("shop", "worker.1"),
            proc("shop", "web.3", "exited"),
        ],
        "blog": [proc("blog", "web.1")],
        "idle": [proc("idle", "web.1")],
        "docs": [proc("docs", "web.1")],
    }
    usage = {"c-shop-web.1": (2_000, 100), "c-shop-web.2": (1_000, 200), "c-shop-worker.1": (0, 50)}
    read: list[str] = []

    hosts: list[object] = []  # the host's CPU time and memory: read once a round, not once per app
    given: list[object] = []

    class Host:
        def __init__(self) -> None:
            hosts.append(self)

    monkeypatch.setattr(collector.process_metrics.engine, "is_local", lambda client: True)
    monkeypatch.setattr(collector.process_metrics.cgroups, "Host", Host)

    def one(client, p, host=None):  # type: ignore[no-untyped-def]
        read.append(p.container)
        given.append(host)
        cpu, mem = usage.get(p.container, (0, 10))
        return {
            "cpu_stats": {"cpu_usage": {"total_usage": cpu}, "system_cpu_usage": 10_000, "online_cpus": 1},
            "memory_stats": {"usage": mem, "limit": 1 << 30, "stats": {}},
        }

    monkeypatch.setattr(collector.process_metrics, "_one", one)
    monkeypatch.setattr(collector.process_metrics, "processes_by_app", lambda c: listed)
    # What the last round stored (CPU % is against it) and what blog's open page took just now.
    ctx.store.add_samples(
        [Sample("shop", d.split("-", 2)[2], d, now - 10, 0, 0, 1, None, 1, 1 << 30) for d in usage]
        + [Sample("blog", "web.1", "c-blog-web.1", now - 2, 0, 0, 1, 50.0, 70, 1 << 30)],
        prune_before=None,
    )
    transactions = []
    real = ctx.store.transaction
    monkeypatch.setattr(ctx.store, "transaction", lambda: transactions.append(1) or real())
    assert collector.sample_processes(ctx, service.history(ctx), now) == 4
    assert sorted(read) == [
        "c-docs-web.1",
        "c-shop-web.1",
        "c-shop-web.2",
        "c-shop-worker.1",
    ]  # not blog, idle
    assert len(transactions) == 2  # the prune and the round's samples: not one per app
    assert len(hosts) == 1 and given == hosts * 4
    points = service.history(ctx).process_points("shop", 10, now - 10)
    assert points["web"][0].cpu == 30.0 and points["web"][0].mem == 300  # 20% + 10% since the last round
    assert points["worker"][0].cpu == 0.0 and points["worker"][0].mem == 50
    blog = service.history(ctx).process_points("blog", 10, now - 10)
    assert blog["web"][0].cpu == 50.0 and blog["web"][0].mem == 70  # the page's sample


def test_the_watch_never_rolls_back_a_release_that_is_no_longer_current(ctx: Context) -> None:
    """A push that got the app's lock first wins: the watch's rollback of v1 finds v2 current."""
    from paas.core.output import BuildLog
    from paas.errors import Conflict
    from paas.services import releases

    app = ctx.store.create_app("raced")
    _release(ctx, app.id)
    _release(ctx, app.id)
    with pytest.raises(Conflict, match="no longer current"):
        releases.rollback(ctx, "raced", "v1", BuildLog(), reason="v1 rolled back: test", only_from=1)
    h = service.history(ctx)
    h.start_watch(
        Watch("raced", 1, 0, T0, T0 + 300, "rolling-back", "why", watch.plan(watch.WatchSettings(), Stats()))
    )
    collector.roll_back(ctx, h, h.watches(app="raced")[0], "why")
    assert h.watches(app="raced")[0].state == "superseded"
    assert [r.version for r in ctx.store.list_releases(app.id)] == [2, 1]  # nothing new
