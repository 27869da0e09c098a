"""Crash loops and OOM kills seen by the reconcile pass reach plugins once per occurrence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from paas.core import names
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


def _ctx(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(
        settings=Settings(data_dir=tmp_path), store=Store(tmp_path / "paas.db"), plugins=FakePlugins()
    )


def test_three_restarts_within_the_window_are_one_crash_loop(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    app = ctx.store.create_app("loopy")
    for t, n in [(0, 0), (10, 1), (20, 2)]:
        assert reconcile._record_crash_loops(ctx, app, [_container("c1", n)], now=t) == []
    assert reconcile._record_crash_loops(ctx, app, [_container("c1", 3)], now=30) == [
        "web.1 is crash-looping"
    ]
    assert reconcile._record_crash_loops(ctx, app, [_container("c1", 6)], now=40) == []  # once per loop
    (call,) = ctx.plugins.calls
    assert call["hook"] == "paas_process_trouble" and call["kind"] == "crash-loop" and call["dyno"] == "web.1"
    assert [e["action"] for e in ctx.store.list_events(app="loopy")] == ["ps:crash-loop"]


def test_restarts_spread_over_more_than_the_window_are_no_loop(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    app = ctx.store.create_app("slow")
    window = reconcile.CRASH_LOOP_SECONDS
    for i in range(6):
        assert reconcile._record_crash_loops(ctx, app, [_container("c2", i)], now=i * window / 2 + 1) == []
    assert ctx.plugins.calls == []


def test_an_oom_kill_reaches_plugins_once(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    app = ctx.store.create_app("hungry")
    killed = _container("c3", 1, oom=True, finished="t1")
    assert reconcile._record_oom_kills(ctx, app, [killed]) == ["web.1 was OOM-killed"]
    assert reconcile._record_oom_kills(ctx, app, [killed]) == []
    assert [c["kind"] for c in ctx.plugins.calls] == ["oom-killed"]
