"""Owners (issue 26): every shared resource has one, and a second, non-admin user can take nothing
that is not theirs. Each test here is an attack that worked on main before the issue (a
re-created app name ...); they drive the front doors (the command dispatcher, the services the
dashboard calls) with the real store and files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from paas.core.output import BuildLog
from paas.errors import NotFound
from paas.services import apps, events, jobs
from tests.unit.test_access import as_user, make_team, run


@pytest.fixture
def team(tmp_path: Path):  # type: ignore[no-untyped-def]
    """admin, owner (owns `shop`), one user per permission on `shop`, and `none`, who owns
    `bobapp` and nothing of shop."""
    ctx = make_team(tmp_path)
    apps.create_app(as_user(ctx, "none"), "bobapp")
    return ctx


# a name is not an identity


def _wait(ctx, app: str, job_id: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not jobs.get(ctx, app, job_id).done:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_new_app_of_an_old_name_inherits_no_events(team) -> None:  # type: ignore[no-untyped-def]
    owner = as_user(team, "owner")
    assert run(owner, "config:set", "shop", "--no-restart", "K=v")[0] == 0
    team.store.add_event("shop", "owner", "run", "python manage.py changepassword hunter2")
    apps.destroy_app(owner, "shop", "shop")
    newcomer = as_user(team, "none")
    apps.create_app(newcomer, "shop")
    seen = events.list_events(newcomer, 1000, "shop")
    assert [e["action"] for e in seen] == ["apps:create"]
    assert all("hunter2" not in e["detail"] for e in events.list_events(newcomer, 1000))
    # admins still see the old app's history in the audit log
    old = [e for e in events.list_events(as_user(team, "admin"), 1000) if "hunter2" in e["detail"]]
    assert [e["app"] for e in old] == ["shop"]


def test_a_new_app_of_an_old_name_inherits_no_jobs(team) -> None:  # type: ignore[no-untyped-def]
    owner = as_user(team, "owner")

    def work(log: BuildLog) -> str:
        log.step("DATABASE_URL=postgres://secret")
        return "done"

    job = jobs.start(owner, "shop", "config:set", "Set", work)
    _wait(owner, "shop", job.id)
    apps.rename_app(owner, "shop", "old-shop")
    apps.create_app(as_user(team, "none"), "shop")
    with pytest.raises(NotFound):
        jobs.get(as_user(team, "none"), "shop", job.id)
    assert jobs.get(owner, "old-shop", job.id).done  # the job follows its app


def test_an_id_is_never_given_twice(team) -> None:  # type: ignore[no-untyped-def]
    """SQLite gives a new row the largest id + 1: the newest app's id (or user's) came back after
    it went, with everything keyed by it."""
    newest = apps.create_app(as_user(team, "owner"), "newest")
    team.store.add_event(newest, "owner", "run", "secret of newest")
    team.store.delete_app(newest.id)
    again = apps.create_app(as_user(team, "none"), "another")
    assert again.id > newest.id
    assert [e["action"] for e in events.list_events(as_user(team, "none"), 100, "another")] == ["apps:create"]
    last = team.store.add_user("last", "", False, "now")
    team.store.remove_user(last.id)
    assert team.store.add_user("next", "", False, "now").id > last.id
    assert team.store.add_key_user("keyed", False, "now") > last.id + 1
