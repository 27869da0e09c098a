"""The status rule of the apps page, and its charts."""

from __future__ import annotations

from paas.scheduler.inventory import ProcessRecord
from paas.services.overview import status_of
from paas.store import App, Release, Sample
from paas.web import charts

APP = App(1, "demo", "2026-01-01T00:00:00Z")
REL = Release(1, 1, 3, 1, {}, {"web": 2, "worker": 1}, "Deploy", "alice", "succeeded", "2026-01-01T00:00:00Z")


def proc(ptype: str, index: int, state: str = "running", release: int = 3) -> ProcessRecord:
    return ProcessRecord("demo", ptype, index, release, state, f"c{ptype}{index}{release}")


def test_statuses() -> None:
    full = [proc("web", 1), proc("web", 2), proc("worker", 1)]
    formation = {"web": 2, "worker": 1}
    assert status_of(APP, REL, formation, full, False) == (
        "running",
        {"web": (2, 2), "worker": (1, 1)},
    )
    assert status_of(APP, REL, formation, full[:2], False)[0] == "crashed"  # worker missing
    restarting = [proc("web", 1), proc("web", 2, "restarting"), proc("worker", 1)]
    assert status_of(APP, REL, formation, restarting, False)[0] == "crashed"
    # Containers of an old release do not count for the current one.
    old = [proc("web", 1, release=2), proc("web", 2, release=2), proc("worker", 1, release=2)]
    assert status_of(APP, REL, formation, old, False)[0] == "crashed"
    assert status_of(APP, REL, formation, [], True)[0] == "deploying"
    stopped = App(1, "demo", "2026-01-01T00:00:00Z", stopped=1)
    assert status_of(stopped, REL, formation, [], False)[0] == "stopped"
    assert status_of(APP, None, {}, [], False)[0] == "new"
    assert status_of(APP, REL, {"web": 0, "worker": 0}, [], False)[0] == "idle"


def sample(dyno: str, at: float, cpu: float | None, mem: int) -> Sample:
    return Sample("demo", dyno, "c", at, 0, 0, 2, cpu, mem, 2**30)


def test_charts_scale_to_round_numbers_and_stay_in_the_box() -> None:
    assert [charts.nice_ceiling(v) for v in (0, 0.3, 1, 3, 7, 12, 99, 101)] == [
        1,
        0.5,
        1,
        5,
        10,
        20,
        100,
        200,
    ]
    history = {
        "web.1": [sample("web.1", 1000.0, None, 40 * 2**20), sample("web.1", 1300.0, 37.5, 60 * 2**20)],
        "worker.1": [sample("worker.1", 1590.0, 2.0, 10 * 2**20)],
    }
    cpu, mem = charts.charts(history, now=1600.0)
    assert cpu.top == "50 %" and mem.top == "100 MiB"
    assert cpu.minutes == 10
    assert charts.charts({"web.1": history["web.1"][1:]}, now=1310.0)[0].minutes == 2  # a fresh page
    assert [line.dyno for line in cpu.lines] == ["web.1", "worker.1"]
    assert cpu.lines[0].last == "38 %" and mem.lines[1].last == "10 MiB"
    for line in cpu.lines + mem.lines:
        for point in line.points.split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= charts.WIDTH and 0 <= y <= charts.HEIGHT
