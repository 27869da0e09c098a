"""The SSH server's warm pack process: imported ahead, it serves the request it is handed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from paas.git_receiver.pack_process import Spawner


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAAS_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "repos").mkdir(parents=True)
    src = tmp_path / "src"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=src, env=env, check=True)
    bare = tmp_path / "data" / "repos" / "web.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    return tmp_path / "data"


def test_a_warm_process_serves_the_request_it_is_handed(data_dir: Path) -> None:
    spawner = Spawner()
    spawner.prepare()
    warm = spawner._warm
    assert warm is not None and warm.args[-1] == "--warm"
    proc = spawner.start("upload-pack", "web", "alice", False)
    assert proc is warm  # the warm one, not a new one
    out, err = proc.communicate(b"0000", timeout=60)
    assert proc.returncode == 0, err
    assert b"refs/heads/main" in out  # web's refs advertised
    spawner.close()


def test_without_a_warm_process_one_is_spawned_cold(data_dir: Path) -> None:
    spawner = Spawner()
    proc = spawner.start("upload-pack", "web", None, False)
    out, err = proc.communicate(b"0000", timeout=60)
    assert proc.returncode == 0, err
    assert b"refs/heads/main" in out


def test_a_request_for_a_bad_name_is_refused_in_one_line(data_dir: Path) -> None:
    spawner = Spawner()
    spawner.prepare()
    proc = spawner.start("upload-pack", "../etc", None, False)
    _out, err = proc.communicate(b"", timeout=60)
    assert proc.returncode != 0
    assert err.decode().count("\n") == 1 and "Traceback" not in err.decode()
    spawner.close()


def test_close_ends_the_warm_process(data_dir: Path) -> None:
    spawner = Spawner()
    spawner.prepare()
    warm = spawner._warm
    assert warm is not None
    spawner.close()
    assert warm.poll() == 0
    spawner.prepare()  # closed: no new one
    assert spawner._warm is None
