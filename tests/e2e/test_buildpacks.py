"""Each kind of app, end to end: git push over OpenSSH, build in containers, deploy, route."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import docker

from paas.buildpacks import stack
from tests.e2e.conftest import APPS_DIR, PaasServer, Result, unique_app
from tests.e2e.test_stack import assert_app_user_reaches_what_it_needs


def _push(paas: PaasServer, src: Path) -> Result:
    return paas.git(src, "push", "paas", "main")


def _new_app(paas: PaasServer, template: str, prefix: str) -> tuple[str, Path]:
    app = unique_app(prefix)
    src = paas.make_repo(template, app)
    assert paas.git(src, "remote", "add", "paas", f"paas:{app}").returncode == 0
    return app, src


def _commit(paas: PaasServer, src: Path, message: str) -> None:
    assert paas.git(src, "add", "-A").returncode == 0
    assert paas.git(src, "commit", "-qm", message).returncode == 0


def _running(app: str, ptype: str | None = None) -> list:
    labels = [f"paas.app={app}", "paas.role=process"]
    if ptype:
        labels.append(f"paas.process_type={ptype}")
    return docker.from_env().containers.list(filters={"label": labels})


def test_flask_runs_heroku_style_and_a_code_only_push_reuses_the_dependency_layer(paas: PaasServer) -> None:
    app, src = _new_app(paas, "python-flask", "flask")
    host = f"{app}.localhost"
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote: -----> Python app detected" in r.stderr
    assert "remote: -----> Installing requirements with pip" in r.stderr
    assert "remote:        Successfully installed" in r.stderr  # 7-space detail lines, streamed
    assert paas.get(host) == (200, "flask version 1\n")
    status, body = paas.get(host, "/env")
    info = json.loads(body)
    assert status == 200
    assert info["uid"] == 1000  # not root
    assert info["executable"].startswith("/app/.heroku/python/bin/python")
    assert info["path"].startswith("/app/.heroku/python/bin:")
    assert (info["unbuffered"], info["dyno"], info["port"]) == ("1", "web.1", "5000")
    assert info["greeting"] == "hello   world"  # the Procfile's quoting survived
    assert info["from_profile"] == "sourced"  # the app's own .profile.d ran
    assert info["docs_shipped"] is False  # .slugignore
    assert info["ca_env"] == []  # build-only settings never reach the image

    # A code-only change: the dependency layer is reused, nothing is installed.
    (src / "VERSION").write_text("2\n")
    _commit(paas, src, "v2")
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "Reusing the installed dependencies (requirements.txt unchanged)" in r.stderr
    assert "Installing requirements" not in r.stderr and "Collecting" not in r.stderr
    assert paas.get(host) == (200, "flask version 2\n")

    # A dependency change installs again (from the cache volume where it can).
    with open(src / "requirements.txt", "a") as fh:
        fh.write("itsdangerous\n")
    _commit(paas, src, "deps")
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "Installing requirements with pip" in r.stderr
    assert paas.get(host) == (200, "flask version 2\n")

    # repo:purge-cache empties the build cache volume.
    client = docker.from_env()
    assert client.volumes.list(filters={"name": f"-{app}"})
    r = paas.ssh("repo:purge-cache", app)
    assert r.returncode == 0, r.output
    assert "Build cache of" in r.stdout
    assert not [v for v in client.volumes.list(filters={"name": f"-{app}"}) if v.name.endswith(f"-{app}")]


def _remove_stack(recipe: stack.StackRecipe) -> None:
    """As on a fresh machine: no image of the recipe (its alias tags go with it)."""
    client = docker.from_env()
    for tag in (recipe.image, f"{stack.STACK_REPOSITORY}:{recipe.name}"):
        try:
            client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
    assert not stack.stack_exists(client, recipe)


def test_django_pinned_to_python_314_builds_on_the_testing_stack_and_serves_static(paas: PaasServer) -> None:
    """The first push that pins a runtime only the testing stack has builds that stack, inside the
    push (under the pack process's memory limit, which its debootstrap must not inherit)."""
    _remove_stack(stack.TESTING_STACK)
    app, src = _new_app(paas, "django-314", "django")
    host = f"{app}.localhost"
    # A bound against a hang, not a speed target: beside three other workers this push took
    # 535 s in one full run and more than 900 s in the next (2026-12-07, every test of that run
    # 1.3-1.8 times slower: a slow machine).
    r = paas.git(src, "push", "paas", "main", timeout=1500)
    assert r.returncode == 0, r.output
    assert "remote: -----> Building the forky stack (once; about two minutes)" in r.stderr
    assert_app_user_reaches_what_it_needs(stack.TESTING_STACK.image)
    assert "remote: -----> Python 3.14 pinned: forky stack" in r.stderr
    assert "remote: -----> Using Python 3.14." in r.stderr
    assert "remote: -----> Running python manage.py collectstatic --noinput" in r.stderr
    assert "remote: -----> Running release command: python manage.py check" in r.stderr
    assert "System check identified no issues" in r.stderr
    status, body = paas.get(host)
    assert status == 200, body
    assert body.startswith("django on python 3.14.")
    css_url = body.strip().split(" css at ")[1]
    assert css_url.startswith("/static/site.") and css_url.endswith(".css")  # hashed by collectstatic
    assert paas.get(host, css_url) == (200, "body { color: rebeccapurple; }\n")


def test_express_with_a_lockfile_builds_prunes_and_starts_with_npm_start(paas: PaasServer) -> None:
    app, src = _new_app(paas, "node-express", "express")
    host = f"{app}.localhost"
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote: -----> Node.js app detected" in r.stderr
    assert "older than any on offer: using 20, the nearest newer version" in r.stderr
    assert "remote: -----> Installing dependencies with npm ci" in r.stderr
    assert "remote: -----> Running the build script" in r.stderr
    assert "remote: -----> Pruning dev dependencies" in r.stderr
    assert "remote: -----> Discovering process types: web" in r.stderr
    status, body = paas.get(host)
    assert status == 200 and body.startswith("express on node v20.") and body.endswith("as web.1\n")
    info = json.loads(paas.get(host, "/info")[1])
    assert info == {
        "nodeEnv": "production",
        "uid": 1000,
        "devDependencyPresent": False,
        "built": "built with is-number: true\n",
    }


def test_static_site_is_served_by_nginx_in_the_app_container(paas: PaasServer) -> None:
    app, src = _new_app(paas, "static-site", "static")
    host = f"{app}.localhost"
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote: -----> Static HTML app detected" in r.stderr
    status, body = paas.get(host)
    assert status == 200 and "A static site served by nginx" in body
    assert paas.get(host, "/css/site.css") == (200, "h1 { color: teal; }\n")
    assert paas.get(host, "/.secret")[0] == 404
    assert paas.get(host, "/missing.html")[0] == 404
    [web] = _running(app, "web")
    ps = web.exec_run(["ps", "-eo", "user:12,args"]).output.decode().splitlines()
    nginx = [line for line in ps if "nginx:" in line]
    assert nginx and all(line.split()[0] == "app" for line in nginx), ps


def test_procfile_only_app_runs_web_and_workers_with_app_json(paas: PaasServer) -> None:
    app, src = _new_app(paas, "procfile-workers", "workers")
    host = f"{app}.localhost"
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote: -----> Procfile app detected" in r.stderr
    assert "Setting 2 env var(s) from app.json: GREETING, SECRET_TOKEN (generated)" in r.stderr
    assert "postdeploy ran as postdeploy.1 with greeting hello from app.json" in r.stderr
    info = json.loads(paas.get(host)[1])
    assert info["dyno"] == "web.1" and info["greeting"] == "hello from app.json"
    assert info["secret_length"] == 64
    workers = _running(app, "worker")
    assert sorted(c.labels["paas.index"] for c in workers) == ["1", "2"]  # app.json formation
    deadline = time.monotonic() + 10
    while not all(
        f"worker {c.labels['paas.process_type']}.{c.labels['paas.index']} tick".encode() in c.logs()
        for c in workers
    ):
        assert time.monotonic() < deadline, [c.logs() for c in workers]
        time.sleep(0.2)

    # Later pushes leave config alone and do not run postdeploy again.
    (src / "web.py").write_text((src / "web.py").read_text() + "# v2\n")
    _commit(paas, src, "v2")
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "from app.json" not in r.stderr and "postdeploy" not in r.stderr  # Dokku's "Processing" line stays
    assert json.loads(paas.get(host)[1])["secret_length"] == 64
    assert len(_running(app, "worker")) == 2


def test_dockerfile_app_uses_expose_and_procfile_overrides_the_command(paas: PaasServer) -> None:
    app, src = _new_app(paas, "dockerfile-app", "docker")
    host = f"{app}.localhost"
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote: -----> Dockerfile app detected" in r.stderr
    assert "Discovering process types: web (port 8080)" in r.stderr
    assert paas.get(host) == (200, "docker app from CMD uid=1000 port=8080\n")

    (src / "Procfile").write_text('web: python3 server.py "from the   Procfile"\n')
    _commit(paas, src, "procfile")
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert paas.get(host) == (200, "docker app from the   Procfile uid=1000 port=8080\n")
    [web] = _running(app, "web")
    assert list(web.attrs["NetworkSettings"]["Ports"]) == ["8080/tcp"]


def test_dockerfile_from_an_image_this_server_lacks_is_rejected_without_pulling(paas: PaasServer) -> None:
    app, src = _new_app(paas, "dockerfile-app", "nopull")
    (src / "Dockerfile").write_text('FROM paas-test/not-here:1\nCMD ["true"]\n')
    _commit(paas, src, "bad base")
    r = _push(paas, src)
    assert r.returncode != 0
    assert "Dockerfile line 1: FROM paas-test/not-here:1: may only name the stack image" in r.stderr


def test_custom_buildpacks_from_server_directories_run_in_order(paas: PaasServer) -> None:
    root = paas.data_dir / "buildpacks"
    for name in ("buildpack-greeting", "buildpack-finisher"):
        if not (root / name).exists():
            shutil.copytree(APPS_DIR / name, root / name)
    app, src = _new_app(paas, "custom-app", "custom")
    host = f"{app}.localhost"
    (src / ".buildpacks").write_text(f"{root / 'buildpack-greeting'}\n{root / 'buildpack-finisher'}\n")
    _commit(paas, src, "buildpacks")
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote: -----> Greeting app detected" in r.stderr
    assert "remote: -----> Finisher app detected" in r.stderr
    assert "remote:        compile run number 1 with this cache" in r.stderr
    assert "previous buildpack exported GREETING_BP_RAN=yes" in r.stderr
    assert paas.get(host, "/index.txt") == (200, "HELLO FROM A CUSTOM BUILDPACK\nexported=yes\n")

    (src / "greeting.txt").write_text("hello again\n")
    _commit(paas, src, "again")
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote:        compile run number 2 with this cache" in r.stderr
    assert paas.get(host, "/index.txt") == (200, "HELLO AGAIN\nexported=yes\n")

    # Only directories under the server's buildpacks folder may be used.
    (src / ".buildpacks").write_text("/etc\n")
    _commit(paas, src, "outside")
    r = _push(paas, src)
    assert r.returncode != 0
    assert f".buildpacks line 1: /etc is not under {root}" in r.stderr


def test_failing_release_command_leaves_the_old_release_serving(paas: PaasServer) -> None:
    app, src = _new_app(paas, "release-phase", "release")
    host = f"{app}.localhost"
    r = _push(paas, src)
    assert r.returncode == 0, r.output
    assert "remote: -----> Running release command: ./release.sh" in r.stderr
    assert "remote:        release phase of release.1: v1" in r.stderr
    assert paas.get(host, "/version.txt") == (200, "v1\n")

    (src / "public" / "version.txt").write_text("v2\n")
    (src / "FAIL_RELEASE").write_text("")
    _commit(paas, src, "breaks the release")
    r = _push(paas, src)
    assert r.returncode != 0
    assert "! [remote rejected] main -> main (deploy failed)" in r.stderr
    assert "remote:        migration failed" in r.stderr
    assert "release command failed (exit status 3): v2 was not deployed" in r.stderr
    assert paas.get(host, "/version.txt") == (200, "v1\n")
    assert [c.labels["paas.release"] for c in _running(app)] == ["1"]


def test_unsatisfiable_python_pin_is_rejected_with_the_versions_on_offer(paas: PaasServer) -> None:
    app, src = _new_app(paas, "python-flask", "pin")
    (src / ".python-version").write_text("3.99\n")
    _commit(paas, src, "pin")
    r = _push(paas, src)
    assert r.returncode != 0
    assert "! [remote rejected] main -> main (build failed)" in r.stderr
    assert (
        "Python 3.99 (.python-version) is not available: versions on offer are 3.13, 3.14, 3.15" in r.stderr
    )
    assert paas.get(f"{app}.localhost")[0] == 404
