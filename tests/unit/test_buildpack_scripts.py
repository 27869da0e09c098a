"""The built-in buildpacks follow the Heroku API; their detect scripts run anywhere with bash."""

import subprocess
from importlib import resources
from pathlib import Path

import pytest

PYTHON_BP = Path(str(resources.files("paas.buildpacks"))) / "builtin" / "python"


@pytest.mark.parametrize("marker", ["requirements.txt", "pyproject.toml", "setup.py"])
def test_python_detects_its_markers(tmp_path: Path, marker: str) -> None:
    (tmp_path / marker).write_text("")
    out = subprocess.run([PYTHON_BP / "bin" / "detect", tmp_path], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "Python"


def test_python_declines_other_apps(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")
    assert subprocess.run([PYTHON_BP / "bin" / "detect", tmp_path]).returncode == 1


def test_release_prints_yaml() -> None:
    import yaml

    out = subprocess.run([PYTHON_BP / "bin" / "release", "/tmp"], capture_output=True, text=True).stdout
    assert yaml.safe_load(out) == {"default_process_types": {}}
