"""Crash loops and OOM kills seen by a converge pass (paas/scheduler/trouble.py) are news once per
occurrence, and the reconcile pass records each one and hands it to plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from paas.core import names
from paas.scheduler import trouble
from paas.scheduler.interface import Converged
from paas.services import reconcile
from paas.settings import Settings
from paas.store import Store


@dataclass
class FakePlugins:
    calls: list[dict] = field(default_factory=list)

    def call_post(self, hook: str, **kwargs: object) -> None:
        self.calls.append({"hook": hook, **kwargs})


def _container(cid: str, restarts: int, oom: bool = False, finished: str = "t0") -> SimpleNamespace:
    return SimpleNamespace(
        id=cid,
        labels={names.LABEL_TYPE: "web", names.LABEL_INDEX: "1"},
        attrs={"RestartCount": restarts, "State": {"OOMKilled": oom, "FinishedAt": finished}},
    )


def test_three_restarts_within_the_window_are_one_crash_loop() -> None:
    for t, n in [(0, 0), (10, 1), (20, 2)]:
        assert trouble.containers("loopy", [_container("c1", n)], now=t) == []
    (loop,) = trouble.containers("loopy", [_container("c1", 3)], now=30)
    assert (loop.dyno, loop.kind, loop.action) == ("web.1", "crash-loop", "web.1 is crash-looping")
    assert trouble.containers("loopy", [_container("c1", 6)], now=40) == []  # once per loop


def test_restarts_spread_over_more_than_the_window_are_no_loop() -> None:
    window = trouble.CRASH_LOOP_SECONDS
    for i in range(6):
        assert trouble.containers("slow", [_container("c2", i)], now=i * window / 2 + 1) == []


def test_an_oom_kill_is_news_once() -> None:
    killed = _container("c3", 1, oom=True, finished="t1")
    assert [t.kind for t in trouble.containers("hungry", [killed], now=0)] == ["oom-killed"]
    assert trouble.containers("hungry", [killed], now=1) == []


def test_a_swarm_slot_with_three_ended_tasks_in_the_window_is_a_crash_loop() -> None:
    """Swarm starts a new task per restart and keeps the ended ones: counted per slot."""
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    ago = [now - timedelta(seconds=s) for s in (5, 20, 40)]
    dynos = {1: "worker.1", 2: "worker.2"}

    def seen(tasks: list) -> list:
        return trouble.slots("app1", {"svc1": (dynos, tasks)}, now)

    assert seen([(1, ago[0]), (1, ago[1])]) == []
    (loop,) = seen([(1, t) for t in ago])
    assert (loop.dyno, loop.kind) == ("worker.1", "crash-loop") and "restarted 3 times" in loop.detail
    assert seen([(1, t) for t in ago]) == []  # once per loop
    assert seen([(1, now - timedelta(seconds=trouble.CRASH_LOOP_SECONDS + 1))] * 5) == []  # settled
    assert len(seen([(1, t) for t in ago])) == 1  # a new loop is news again
    assert trouble.slots("app1", {}, now) == [] and trouble._looping["app1"] == set()  # service gone


def test_what_is_kept_is_what_the_last_pass_saw() -> None:
    killed = _container("c9", 1, oom=True, finished="t1")
    trouble.containers("gone", [killed], now=0)
    trouble.containers("gone", [], now=1)  # the container was removed
    assert trouble._oom_seen["gone"] == {} and trouble._restarts["gone"] == {}


class FakeScheduler:
    def __init__(self, done: Converged) -> None:
        self.done = done

    def converge(self, app: str, want: object) -> Converged:
        return self.done

    def probes(self, started: list) -> list:
        return []

    def upstreams(self, handles: list) -> list[str]:
        return []

    def release_of(self, handle: object) -> int:
        return 1


def test_reconcile_records_each_trouble_and_tells_plugins(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "paas.db")
    ctx = SimpleNamespace(
        settings=Settings(data_dir=tmp_path),
        store=store,
        plugins=FakePlugins(),
        docker=SimpleNamespace(),
        shared=lambda key, make: make(),
    )
    app = store.create_app("loopy")
    loop = trouble.Trouble(
        "web.1", "crash-loop", "web.1 restarted 3 times in 5 minutes", "web.1 is crash-looping"
    )
    monkeypatch.setattr(
        reconcile.schedulers, "for_app", lambda c, a: FakeScheduler(Converged(troubles=[loop]))
    )
    monkeypatch.setattr(reconcile, "route_app", lambda *a, **k: None)
    monkeypatch.setattr(reconcile.sched, "stop_and_remove", lambda *a, **k: None)
    ctx.docker = SimpleNamespace(containers=SimpleNamespace(list=lambda **k: []))
    assert reconcile._reconcile(ctx, app) == ["web.1 is crash-looping"]  # type: ignore[arg-type]
    (call,) = ctx.plugins.calls
    assert call["hook"] == "paas_process_trouble" and call["kind"] == "crash-loop" and call["dyno"] == "web.1"
    assert [e["action"] for e in store.list_events(app="loopy")] == ["ps:crash-loop"]
