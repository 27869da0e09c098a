"""The data dir holds every config value of every release: only root reads it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from paas.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_dirs_fixes_the_modes_of_an_older_install(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    s.data_dir.mkdir(mode=0o755)
    for f in (s.db_path, s.log_path, s.host_key_path):
        f.write_text("x")
        f.chmod(0o644)
    s.ensure_dirs()
    assert os.geteuid() == 0  # the suite runs as root, like the server
    assert mode(s.data_dir) == 0o711 and mode(s.nginx_dir) == 0o755
    assert mode(s.repos_dir) == 0o700 and mode(s.locks_dir) == 0o700
    assert {mode(f) for f in (s.db_path, s.log_path, s.host_key_path)} == {0o600}


def test_the_cli_creates_the_store_for_root_only(tmp_path: Path) -> None:
    env = {**os.environ, "PAAS_DATA_DIR": str(tmp_path / "data")}
    paas = Path(sys.executable).with_name("paas")
    out = subprocess.run([str(paas), "apps:create", "modes"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert mode(tmp_path / "data" / "paas.db") == 0o600
    assert mode(tmp_path / "data") == 0o711
