"""The built-in buildpacks follow the Heroku API; their scripts' decisions run anywhere with bash."""

import os
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml

BUILTIN = Path(str(resources.files("paas.buildpacks"))) / "builtin"
PYTHON_BP = BUILTIN / "python"
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}


def run(script: Path, *args: object, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([script, *map(str, args)], capture_output=True, text=True, env={**ENV, **env})


@pytest.mark.parametrize(
    "marker",
    ["requirements.txt", "pyproject.toml", "setup.py", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock"],
)
def test_python_detects_its_markers(tmp_path: Path, marker: str) -> None:
    (tmp_path / marker).write_text("")
    out = run(PYTHON_BP / "bin" / "detect", tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "Python"


def test_python_declines_other_apps(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")
    assert run(PYTHON_BP / "bin" / "detect", tmp_path).returncode == 1


@pytest.mark.parametrize(
    ("name", "marker", "label"),
    [
        ("nodejs", "package.json", "Node.js"),
        ("static", "index.html", "Static HTML"),
        ("procfile", "Procfile", "Procfile"),
    ],
)
def test_other_builtins_detect(tmp_path: Path, name: str, marker: str, label: str) -> None:
    assert run(BUILTIN / name / "bin" / "detect", tmp_path).returncode == 1
    (tmp_path / marker).write_text("")
    out = run(BUILTIN / name / "bin" / "detect", tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == label


def test_release_prints_yaml(tmp_path: Path) -> None:
    out = run(PYTHON_BP / "bin" / "release", tmp_path).stdout
    assert yaml.safe_load(out) == {"default_process_types": {}}
    out = run(BUILTIN / "nodejs" / "bin" / "release", tmp_path).stdout
    assert yaml.safe_load(out) == {"default_process_types": {"web": "npm start"}}
    out = run(BUILTIN / "static" / "bin" / "release", tmp_path).stdout
    assert yaml.safe_load(out) == {"default_process_types": {"web": "/app/.paas/static/serve"}}


def test_python_release_offers_gunicorn_for_a_django_project(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "wsgi.py").write_text("")
    gunicorn = tmp_path / ".heroku" / "python" / "bin" / "gunicorn"
    gunicorn.parent.mkdir(parents=True)
    gunicorn.write_text("")
    gunicorn.chmod(0o755)
    out = run(PYTHON_BP / "bin" / "release", tmp_path).stdout
    assert yaml.safe_load(out) == {
        "default_process_types": {"web": "gunicorn mysite.wsgi --bind 0.0.0.0:$PORT"}
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            ["requirements.txt", "poetry.lock"],
            "found several Python package manager files (requirements.txt poetry.lock)",
        ),
        (["Pipfile"], "Pipfile without Pipfile.lock: run 'pipenv lock' and commit Pipfile.lock"),
        (["setup.cfg"], "no Python package manager file: add requirements.txt, pyproject.toml"),
    ],
)
def test_python_compile_wants_exactly_one_package_manager(
    tmp_path: Path, files: list[str], message: str
) -> None:
    for f in files:
        (tmp_path / f).write_text("")
    out = run(
        PYTHON_BP / "bin" / "compile", tmp_path, tmp_path / "cache", tmp_path / "env", PAAS_PHASE="deps"
    )
    assert out.returncode == 1
    assert f" !     {message}" in out.stdout
    assert not (tmp_path / ".heroku").exists()


def test_python_compile_names_a_missing_interpreter(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("")
    out = run(
        PYTHON_BP / "bin" / "compile", tmp_path, tmp_path, tmp_path, PAAS_PYTHON_VERSION="2.1", STACK="x"
    )
    assert out.returncode == 1 and "Python 2.1 is not on the x stack" in out.stdout


def test_static_compile_serves_the_named_folder_and_refuses_escapes(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / ".static").write_text("# the site\npublic/\n")
    out = run(BUILTIN / "static" / "bin" / "compile", tmp_path, tmp_path, tmp_path, PAAS_PHASE="app")
    assert out.returncode == 0, out.stdout
    conf = (tmp_path / ".paas" / "static" / "nginx.conf.template").read_text()
    assert "root /app/public;" in conf and "listen @PORT@" in conf
    assert os.access(tmp_path / ".paas" / "static" / "serve", os.X_OK)
    for bad in ("../etc", "/etc", "a;b", "missing"):
        (tmp_path / ".static").write_text(bad + "\n")
        out = run(BUILTIN / "static" / "bin" / "compile", tmp_path, tmp_path, tmp_path, PAAS_PHASE="app")
        assert out.returncode == 1 and out.stdout.startswith(" !     .static"), (bad, out.stdout)


def test_every_builtin_script_is_executable() -> None:
    for script in BUILTIN.glob("*/bin/*"):
        assert os.access(script, os.X_OK), script
