"""Disk accounting (issue 27): what an app adds, counted as the disk fills; the stop of the apps
that write the most once their owner is past the disk quota. Real folders; docker faked (the
e2e test in tests/e2e/test_quotas.py fills a real container's filesystem)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from paas.core.context import Context
from paas.services import apps, disk, disk_usage, quotas
from paas.settings import Settings
from tests.unit.test_access import as_user, pubkey

MIB = 1 << 20


def test_allocated_counts_blocks_hard_links_once_and_no_symlink_targets(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "data").write_bytes(os.urandom(3 * MIB))
    os.link(root / "sub" / "data", root / "again")
    outside = tmp_path / "outside"
    outside.write_bytes(os.urandom(5 * MIB))
    (root / "link").symlink_to(outside)
    with open(root / "sparse", "wb") as fh:
        fh.truncate(10 << 30)  # 10 GiB apparent, nothing allocated
    used = disk_usage.allocated(root)
    assert 3 * MIB <= used < 3 * MIB + 256 * 1024
    assert disk_usage.allocated(tmp_path / "missing") == 0


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    from paas.services import keys

    c = Context.open(
        Settings(data_dir=tmp_path / "data", quota_disk=10 * MIB), actor="host", is_admin=True, on_host=True
    )
    for name in ("admin", "bob", "carol"):
        keys.add_key(c, name, pubkey(tmp_path, name))
    c._extra["docker"] = SimpleNamespace(containers=SimpleNamespace(list=lambda **kw: []))
    return c


def parts(**given: int) -> dict[str, int]:
    return {p: given.get(p, 0) for p in disk_usage.PARTS}


def test_the_biggest_writers_of_a_user_past_the_quota_are_stopped_and_nobody_else(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[tuple[str, str]] = []
    monkeypatch.setattr(disk_usage.processes, "stop", lambda c, name, log: stopped.append((c.actor, name)))
    bob, carol, admin = (as_user(ctx, n) for n in ("bob", "carol", "admin"))
    hog, quiet, static = (apps.create_app(bob, n) for n in ("hog", "quiet", "static"))
    neighbour = apps.create_app(carol, "neighbour")
    own = apps.create_app(admin, "own")
    measured = {
        hog.id: parts(containers=40 * MIB, logs=8 * MIB, repo=MIB),
        quiet.id: parts(containers=2 * MIB, images=3 * MIB),
        static.id: parts(repo=2 * MIB),
        neighbour.id: parts(containers=9 * MIB),  # under carol's quota
        own.id: parts(containers=500 * MIB),  # an admin's: not held
    }
    for app_id, measured_parts in measured.items():  # as measure() keeps them
        ctx.store.set_disk_usage(app_id, measured_parts, 0.0)
    assert disk_usage.enforce(ctx, measured) == ["hog"]
    assert stopped == [("paas", "hog")]
    events = [e for e in ctx.store.list_events() if e["action"] == "quota:disk"]
    assert [(e["app"], e["user"]) for e in events] == [("hog", "paas")]
    assert events[0]["detail"] == (
        "stopped: the disk quota of bob (10m) is exceeded: 56m used, 48m written by hog's containers"
    )
    assert ctx.store.disk_usage([hog.id])[hog.id]["containers"] == 0  # its containers are gone
    assert quotas.disk_used(ctx, ctx.store.get_user("bob").id) == 8 * MIB  # type: ignore[union-attr]


def test_an_app_that_frees_nothing_is_not_stopped(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk_usage.processes, "stop", lambda *a: pytest.fail("stopped"))
    app = apps.create_app(as_user(ctx, "bob"), "big-repo")
    assert disk_usage.enforce(ctx, {app.id: parts(repo=50 * MIB, containers=100)}) == []


def test_image_layers_above_the_stack_count_once_per_app(ctx: Context) -> None:
    stack = {"Id": "sha256:stack", "Size": 750 * MIB, "Comment": "Imported from -", "CreatedBy": ""}
    old_stack = {"Id": "sha256:old", "Size": 740 * MIB, "Comment": "Imported from -", "CreatedBy": ""}
    deps = {"Id": "sha256:deps", "Size": 17 * MIB, "Comment": "", "CreatedBy": "deps"}
    histories = {
        "b2": [{"Id": "sha256:b2", "Size": 2 * MIB}, deps, stack],
        "b1": [{"Id": "sha256:b1", "Size": 2 * MIB}, deps, stack],
        "deps": [deps, stack],
        "b0": [{"Id": "<missing>", "Size": MIB, "Created": 1}, old_stack],  # on a stack since rebuilt
    }
    ctx._extra["docker"] = SimpleNamespace(api=SimpleNamespace(history=lambda image_id: histories[image_id]))
    engine = disk_usage.Engine({}, {"paas/app-shop": ["b2", "b1", "deps", "b0", "b1"]}, {"sha256:stack"}, {})
    app = apps.create_app(ctx, "shop")
    assert disk_usage._images(ctx, app, engine) == (2 + 2 + 17 + 1) * MIB


def test_below_the_reserve_the_biggest_writers_stop_whatever_their_quotas(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[str] = []
    monkeypatch.setattr(disk_usage.processes, "stop", lambda c, name, log: stopped.append(name))
    free = [disk.Space("data dir", "/x", 300 * MIB, 100 << 30)]
    monkeypatch.setattr(disk_usage.disk, "spaces", lambda ctx: free)
    bob, carol, admin = (as_user(ctx, n) for n in ("bob", "carol", "admin"))
    quotas.set_quotas(ctx, "bob", ["disk=100g"])
    quotas.set_quotas(ctx, "carol", ["disk=100g"])
    big, small, tiny = (
        apps.create_app(bob, "big"),
        apps.create_app(carol, "small"),
        apps.create_app(bob, "tiny"),
    )
    own = apps.create_app(admin, "own")
    measured = {
        big.id: parts(containers=500 * MIB),
        small.id: parts(logs=400 * MIB),
        tiny.id: parts(containers=300 * MIB),
        own.id: parts(containers=900 * MIB),  # an admin's: never stopped
    }
    assert disk_usage.keep_reserve(ctx, measured) == ["big", "small"]  # 300m + 500m + 400m >= 1g
    assert stopped == ["big", "small"]
    details = [e["detail"] for e in ctx.store.list_events() if e["action"] == "quota:disk"]
    assert details[0] == (
        "stopped: the disk is nearly full (300m free, PAAS_DISK_RESERVE is 1g):"
        " 500m written by big's containers"
    )
    free[0] = disk.Space("data dir", "/x", 2 << 30, 100 << 30)
    assert disk_usage.keep_reserve(ctx, measured) == []
