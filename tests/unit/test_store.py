import sqlite3
from pathlib import Path

from paas.store import Store
from paas.store.db import _migrations, _statements, connect


def test_fresh_database_is_at_the_latest_migration(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.db")
    latest = max(n for n, _ in _migrations())
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Re-opening does not re-apply anything.
    assert connect(tmp_path / "x.db").execute("PRAGMA user_version").fetchone()[0] == latest


def test_statement_splitter_ignores_semicolons_in_comments() -> None:
    sql = "-- a; b\nCREATE TABLE t (x TEXT DEFAULT ';');\nCREATE INDEX i ON t(x);\n"
    assert len(_statements(sql)) == 2


def test_releases_are_numbered_per_app_and_current_is_last_succeeded(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    a, b = store.create_app("a"), store.create_app("b")
    r1 = store.create_release(a.id, None, {"K": "v"}, {"web": 1}, "Deploy 1", "alice")
    r2 = store.create_release(a.id, None, {}, {"web": 1}, "Deploy 2", "alice")
    rb = store.create_release(b.id, None, {}, {}, "Deploy", None)
    assert (r1.version, r2.version, rb.version) == (1, 2, 1)
    assert store.current_release(a.id) is None
    store.set_release_status(r1.id, "succeeded")
    store.set_release_status(r2.id, "failed")
    current = store.current_release(a.id)
    assert current is not None and current.version == 1 and current.config == {"K": "v"}


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        store.create_release(999, None, {}, {}, "x", None)
    except sqlite3.IntegrityError:
        return
    raise AssertionError("a release for a missing app was accepted")


def test_build_outputs_are_kept_for_the_last_builds_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from paas.store import Store

    store = Store(tmp_path / "db")
    app = store.create_app("noisy")
    ids = [store.create_build(app.id, f"{i:040d}", "alice") for i in range(5)]
    for i in ids:
        store.finish_build(i, "succeeded", "x" * 1000)
    assert store.prune_build_outputs(app.id, 2) == 3
    assert [store.get_build(i).output for i in ids] == ["", "", "", "x" * 1000, "x" * 1000]  # type: ignore[union-attr]
