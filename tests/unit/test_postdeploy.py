"""Postdeploy tasks run after the release is live: each one runs whatever the one before did,
and what failed is said, recorded, and handed back for the push to fail with."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from paas.core.context import Context
from paas.core.output import BuildLog
from paas.services import push
from paas.services.release_phase import PostdeployFailed
from paas.settings import Settings


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path), actor="alice", is_admin=True, on_host=True)
    ctx.store.create_app("myapp")
    return ctx


def test_every_task_runs_and_each_failure_is_said_and_recorded(ctx: Context) -> None:
    ran: list[str] = []
    lines: list[str] = []

    def first() -> None:
        ran.append("first")
        raise PostdeployFailed("Execution of first deploy postdeploy task failed (exit status 4)")

    def engine_gone() -> None:
        ran.append("engine")
        raise docker.errors.APIError("500 Server Error: the engine went away")

    def dokku() -> None:
        ran.append("dokku")

    app = ctx.store.get_app("myapp")
    failed = push._postdeploy(ctx, app, BuildLog(lines.append), [first, engine_gone, dokku])
    assert ran == ["first", "engine", "dokku"]
    assert failed[0] == "Execution of first deploy postdeploy task failed (exit status 4)"
    assert failed[1].startswith("postdeploy could not run: 500 Server Error") and len(failed) == 2
    assert any("exit status 4" in line for line in lines)
    events = [e for e in ctx.store.list_events(app="myapp") if e["action"] == "postdeploy:failed"]
    assert len(events) == 2


def test_no_failure_no_complaint(ctx: Context) -> None:
    app = ctx.store.get_app("myapp")
    assert push._postdeploy(ctx, app, BuildLog(lambda _: None), [lambda: None]) == []
