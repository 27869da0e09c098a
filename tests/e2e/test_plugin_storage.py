"""The storage plugin end to end: a directory made on the host, mounted into an app, its data
kept across pushes, a rollback, a rename and restarts; refused paths; what destroy leaves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import PaasServer, unique_app

FIXTURE = Path(__file__).resolve().parents[2] / "plugins" / "storage" / "fixtures" / "storage-app"


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def push(paas: PaasServer, src: Path) -> str:
    return ok(paas.git(src, "push", "paas", "main"))


@pytest.fixture(scope="module")
def state(paas: PaasServer) -> dict:
    """An app mounting a fresh storage directory at /app/storage, pushed once."""
    name, directory = unique_app("stor"), unique_app("data")
    src = paas.root / "src" / name
    shutil.copytree(FIXTURE, src)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        ok(paas.git(src, *args))
    ok(paas.git(src, "remote", "add", "paas", f"paas:{name}"))
    out = ok(paas.ssh("storage:ensure-directory", directory))
    host = paas.data_dir / "storage" / directory
    assert f"Created {host}" in out
    ok(paas.ssh("apps:create", name))
    out = ok(paas.ssh("storage:mount", name, f"{host}:/app/storage"))
    assert "takes effect on the next deploy or ps:restart" in out
    push(paas, src)
    return {"app": name, "src": src, "host": host}


def test_data_in_a_mount_survives_pushes_rollback_and_rename(paas: PaasServer, state: dict) -> None:
    app, src, host = state["app"], state["src"], state["host"]
    st = host.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o750)
    # A one-off container writes, as the app user; the web process and the host see it.
    out = ok(
        paas.ssh("run", app, "echo kept > /app/storage/note.txt && id -u && stat -c %u /app/storage/note.txt")
    )
    assert out.split() == ["1000", "1000"]
    assert (host / "note.txt").read_text() == "kept\n"
    assert (host / "note.txt").stat().st_uid == 1000
    assert paas.get(f"{app}.localhost", "/file/note.txt") == (200, "kept\n")
    # The release phase of the first push wrote into it too.
    assert (host / "release.log").read_text() == "release phase v1\n"

    (src / "VERSION").write_text("2\n")
    ok(paas.git(src, "commit", "-qam", "v2"))
    push(paas, src)
    assert paas.get(f"{app}.localhost") == (200, "version 2\n")
    assert paas.get(f"{app}.localhost", "/file/note.txt") == (200, "kept\n")
    assert (host / "release.log").read_text() == "release phase v1\nrelease phase v2\n"

    ok(paas.ssh("releases:rollback", app))
    assert paas.get(f"{app}.localhost") == (200, "version 1\n")
    assert paas.get(f"{app}.localhost", "/file/note.txt") == (200, "kept\n")

    renamed = app + "-b"
    ok(paas.ssh("apps:rename", app, renamed))
    state["app"] = renamed
    assert paas.get(f"{renamed}.localhost", "/file/note.txt") == (200, "kept\n")
    ok(paas.git(src, "remote", "set-url", "paas", f"paas:{renamed}"))
    listed = ok(paas.ssh("storage:list", renamed))
    assert f"{host}:/app/storage" in listed


def test_refused_mounts_unmount_and_destroy(paas: PaasServer, state: dict) -> None:
    app, host = state["app"], state["host"]
    storage = paas.data_dir / "storage"
    for spec, error in [
        (f"{paas.data_dir}/repos:/data", f"error: host directory must be under {storage}/\n"),
        (f"{host}/../../repos:/data", f"error: host directory must be under {storage}/\n"),
        (f"{host}:/etc", "error: container path /etc is refused: /etc belongs to the image or the kernel\n"),
    ]:
        r = paas.ssh("storage:mount", app, spec)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", error)

    out = ok(paas.ssh("storage:unmount", app, f"{host}:/app/storage"))
    assert "takes effect on the next deploy or ps:restart" in out
    assert paas.get(f"{app}.localhost", "/file/note.txt") == (200, "kept\n")  # until the restart
    ok(paas.ssh("ps:restart", app))
    assert paas.get(f"{app}.localhost", "/file/note.txt") == (404, "no such file\n")
    assert (
        ok(paas.ssh("run", app, "ls /app/storage 2>&1 || true")).strip().endswith("No such file or directory")
    )

    out = ok(paas.ssh("apps:destroy", app, "--confirm", app))
    assert f"Storage kept: {host} (no app mounts it now; remove it by hand)" in out
    assert (host / "note.txt").read_text() == "kept\n"
