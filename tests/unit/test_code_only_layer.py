"""When a built-in buildpack's app phase is only a copy, the builder adds the code itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.buildpacks import layers
from tests.unit.test_buildpack_detect import make_tree

PROFILE = (Path(layers.__file__).parent / "builtin" / "python" / "conf" / "profile.sh").read_text()


def test_plain_requirements_is_a_copy_with_the_buildpacks_profile(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, {"requirements.txt": "flask\n", "app.py": "", "pyproject.toml": "[tool.x]\n"})
    assert layers.copy_only_files("python", tree) == {".profile.d/python.sh": PROFILE}
    assert "VIRTUAL_ENV=/app/.heroku/python" in PROFILE


@pytest.mark.parametrize("extra", ["manage.py", "poetry.lock", "uv.lock", "Pipfile.lock"])
def test_django_or_another_manager_runs_the_buildpack(tmp_path: Path, extra: str) -> None:
    tree = make_tree(tmp_path, {"requirements.txt": "flask\n", extra: ""})
    assert layers.copy_only_files("python", tree) is None


def test_a_link_in_place_of_a_marker_runs_the_buildpack(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, {"requirements.txt": "flask\n", "x": ""}, links={"manage.py": "x"})
    assert layers.copy_only_files("python", tree) is None


def test_no_requirements_or_other_buildpacks_run_the_buildpack(tmp_path: Path) -> None:
    assert layers.copy_only_files("python", make_tree(tmp_path / "a", {"pyproject.toml": ""})) is None
    tree = make_tree(tmp_path / "b", {"package.json": "{}", "requirements.txt": ""})
    assert layers.copy_only_files("nodejs", tree) is None
    assert layers.copy_only_files("static", tree) is None


def test_the_buildpack_writes_the_same_profile() -> None:
    compile_script = (Path(layers.__file__).parent / "builtin" / "python" / "bin" / "compile").read_text()
    assert 'cat "$BP_DIR/conf/profile.sh" > "$BUILD_DIR/.profile.d/python.sh"' in compile_script
