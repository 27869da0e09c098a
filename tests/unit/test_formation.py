"""The formation rule exists once: `release` runs once per release and is never scaled."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import formation, releases
from paas.settings import Settings


def test_default_formation_skips_release_and_starts_one_web() -> None:
    procs = {"web": "gunicorn", "worker": "celery", "release": "migrate"}
    assert releases.default_formation(procs, {}) == {"web": 1, "worker": 0}
    assert releases.default_formation(procs, {"worker": 2}) == {"web": 1, "worker": 2}


def test_a_rollback_keeps_release_out_of_the_formation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback had a copy of the default formation that counted `release` as a process."""
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    app = ctx.store.create_app("shop")
    build = ctx.store.create_build(app.id, "a" * 40, "alice")
    ctx.store.finish_build(build, "succeeded", "out", "img", {"web": "x", "release": "y"}, "Python")
    for what in ("Deploy", "Set X"):
        ctx.store.set_release_status(
            ctx.store.create_release(app.id, build, {}, {"web": 1}, what, "a").id, "succeeded"
        )
    monkeypatch.setattr(releases, "deploy_release", lambda *a, **k: None)
    made = releases.rollback(ctx, "shop", "v1", BuildLog())
    assert made.formation == {"web": 1} and ctx.store.get_formation(app.id) == {"web": 1}


def test_scaling_release_is_refused_with_one_line(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    app = ctx.store.create_app("shop")
    build = ctx.store.create_build(app.id, "a" * 40, "alice")
    ctx.store.finish_build(build, "succeeded", "out", "img", {"web": "x", "release": "y"}, "Python")
    with pytest.raises(PaasError, match=r"^release runs once per release, before its processes start"):
        formation.scale(ctx, "shop", {"release": 2}, BuildLog())


def test_scale_before_the_first_deploy_is_stored_and_applied_to_the_types_the_build_has(
    tmp_path: Path,
) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    app = ctx.store.create_app("shop")
    assert formation.scale(ctx, "shop", {"worker": 1, "clock": 2}, BuildLog()) is None  # no release yet
    assert ctx.store.get_formation(app.id) == {"worker": 1, "clock": 2}
    procs = {"web": "a", "worker": "b", "cron": "c"}  # what the first build finds (no clock)
    assert releases.default_formation(procs, ctx.store.get_formation(app.id)) == {
        "cron": 0,
        "web": 1,
        "worker": 1,
    }


def test_app_json_scales_process_types_new_to_the_app() -> None:
    procs = {"web": "a", "cron": "c"}
    manifest = {"web": 1, "cron": 1, "worker": 1}
    # The stored scale wins for known types; a new one gets app.json's quantity; gone types go.
    assert releases.default_formation(procs, {"web": 3, "worker": 1}, manifest) == {"cron": 1, "web": 3}
