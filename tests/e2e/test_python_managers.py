"""Python apps locked with pipenv, poetry and uv deploy unchanged (tools come from the index)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import PaasServer, unique_app


@pytest.mark.parametrize(
    ("template", "manager", "lockfile"),
    [
        ("py-pipenv", "pipenv", "Pipfile.lock"),
        ("py-poetry", "poetry", "poetry.lock"),
        ("py-uv", "uv", "uv.lock"),
    ],
)
def test_locked_python_app_deploys(paas: PaasServer, template: str, manager: str, lockfile: str) -> None:
    app = unique_app(manager)
    src = paas.make_repo(template, app)
    paas.git(src, "remote", "add", "paas", f"paas:{app}")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    assert f"Installing dependencies from {lockfile} with {manager}" in r.stderr
    assert paas.get(f"{app}.localhost") == (200, f"installed by {manager}: flask\n")
    # A code-only change reuses the installed dependencies.
    (src / "app.py").write_text((src / "app.py").read_text().replace("installed by", "still installed by"))
    paas.git(src, "commit", "-qam", "code only")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    assert "Reusing the installed dependencies" in r.stderr
    assert paas.get(f"{app}.localhost") == (200, f"still installed by {manager}: flask\n")


def test_pyproject_app_is_installed_with_pip(paas: PaasServer) -> None:
    app = unique_app("pep517")
    src = paas.make_repo("py-pyproject", app)
    paas.git(src, "remote", "add", "paas", f"paas:{app}")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    assert paas.get(f"{app}.localhost") == (200, "installed by pip: flask\n")
    # The package itself is installed (not just importable from /app): pip knows it.
    r = paas.ssh("run", app, "pip show hello-pkg")
    assert r.returncode == 0 and "Name: hello-pkg" in r.stdout, r.output
