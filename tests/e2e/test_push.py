"""The walking skeleton end to end: git push over OpenSSH, build, deploy, route through nginx."""

from __future__ import annotations

import subprocess

import docker

from tests.e2e.conftest import PaasServer, unique_app


def test_ssh_commands_help_create_list(paas: PaasServer) -> None:
    r = paas.ssh("help")
    assert r.returncode == 0
    for name in ("apps:create", "apps:list", "ssh-keys:list"):
        assert name in r.stdout
    app = unique_app("made")
    r = paas.ssh("apps:create", app)
    assert r.returncode == 0, r.output
    assert app in paas.ssh("apps:list").stdout
    again = paas.ssh("apps:create", app)
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: app '{app}' already exists"


def test_bad_commands_give_one_line_errors(paas: PaasServer) -> None:
    r = paas.ssh("no-such-command")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: unknown command 'no-such-command'; run 'help' for the list"
    r = paas.ssh("apps:create", "Bad_Name")
    assert r.returncode == 1
    assert "invalid app name" in r.stderr and "Traceback" not in r.output
    r = paas.ssh("ssh-keys:add", "bob", "-")  # host-only
    assert r.returncode == 1 and "unknown command" in r.stderr


def test_unknown_key_is_denied(paas: PaasServer) -> None:
    stranger = paas.root / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    p = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(paas.ssh_port),
            "-i",
            str(stranger),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "paas@127.0.0.1",
            "apps:list",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 255
    assert "Permission denied (publickey)" in p.stderr


def test_unknown_host_gets_404(paas: PaasServer) -> None:
    status, body = paas.get("nothing-here.localhost")
    assert status == 404
    assert "no app" in body


def test_push_deploys_redeploys_and_survives_a_broken_push(paas: PaasServer) -> None:
    app = unique_app("hello")
    host = f"{app}.localhost"
    src = paas.make_repo("flask-hello", app)
    assert paas.git(src, "remote", "add", "paas", f"paas:{app}").returncode == 0

    # First push: auto-creates the app, builds with the Python buildpack, deploys v1.
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    assert "remote: -----> Python app detected" in r.stderr
    assert "remote: -----> Installing requirements with pip" in r.stderr
    assert f"remote: =====> Application deployed: http://{host}:{paas.http_port}" in r.stderr
    assert paas.get(host) == (200, "Hello from web.1 version 1\n")

    # The container is labelled and published on loopback only.
    client = docker.from_env()
    [container] = client.containers.list(filters={"label": f"paas.app={app}"})
    assert container.labels["paas.release"] == "1"
    assert container.labels["paas.process_type"] == "web"
    [binding] = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    assert env["PORT"] == "5000" and env["DYNO"] == "web.1"

    # A code change replaces the container.
    (src / "VERSION").write_text("2\n")
    paas.git(src, "commit", "-qam", "v2")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    assert "Releasing v2" in r.stderr
    assert paas.get(host) == (200, "Hello from web.1 version 2\n")
    running = client.containers.list(filters={"label": f"paas.app={app}"})
    assert [c.labels["paas.release"] for c in running] == ["2"]

    # A broken build is rejected, says why, and v2 keeps serving.
    with open(src / "requirements.txt", "a") as fh:
        fh.write("this-package-does-not-exist-paas-test==1.0\n")
    paas.git(src, "commit", "-qam", "broken")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode != 0
    assert "! [remote rejected] main -> main (build failed)" in r.stderr
    assert "No matching distribution found for this-package-does-not-exist-paas-test" in r.stderr
    assert paas.get(host) == (200, "Hello from web.1 version 2\n")
    # The rejected ref did not move on the server, and the config still names the running commit
    # (GIT_REV was written before the build, and a failed one left its commit there).
    running_sha = paas.git(src, "rev-parse", "HEAD~1").stdout.strip()
    ls = paas.git(src, "ls-remote", "paas", "main")
    assert ls.stdout.split()[0] == running_sha
    assert paas.ssh("config:get", app, "GIT_REV").stdout.strip() == running_sha

    # Another branch is refused with a message that says which branch deploys.
    r = paas.git(src, "push", "paas", "HEAD~1:refs/heads/feature")
    assert r.returncode != 0
    assert "main -> feature" in r.stderr or "-> feature" in r.stderr
    assert "only main or master deploys" in r.stderr


def test_app_that_crashes_on_boot_is_rejected_with_its_logs(paas: PaasServer) -> None:
    app = unique_app("crash")
    src = paas.make_repo("crash-on-boot", app)
    paas.git(src, "remote", "add", "paas", f"paas:{app}")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode != 0
    assert "! [remote rejected] main -> main (deploy failed)" in r.stderr
    assert "web.1 exited with status 3" in r.stderr or "web.1 crashed and was restarted" in r.stderr
    assert "boom: cannot start" in r.stderr
    client = docker.from_env()
    assert client.containers.list(all=True, filters={"label": f"paas.app={app}"}) == []
    assert paas.get(f"{app}.localhost")[0] == 404


def test_a_clone_checks_out_the_deployed_branch_and_pushes_back(paas: PaasServer) -> None:
    """No branch name is configured anywhere: the clone follows the app's HEAD and its upstream."""
    app = unique_app("cloned")
    src = paas.make_repo("stdlib-web", app)
    assert paas.git(src, "push", f"paas:{app}", "main").returncode == 0
    clone = paas.root / "src" / f"{app}-clone"
    r = paas.git(paas.root, "clone", f"paas:{app}", str(clone))
    assert r.returncode == 0 and "warning" not in r.stderr, r.output
    assert (clone / "Procfile").read_text() == (src / "Procfile").read_text()
    assert paas.git(clone, "branch", "--show-current").stdout.strip() == "main"
    (clone / "VERSION").write_text("2\n")
    assert paas.git(clone, "commit", "-qam", "v2 from the clone").returncode == 0
    r = paas.git(clone, "push")
    assert r.returncode == 0, r.output
    assert "Releasing v2" in r.stderr
    assert paas.get(f"{app}.localhost")[1].startswith("version 2 web.1")

    # An app that deploys from master clones on master.
    on_master = unique_app("master")
    assert paas.git(src, "push", f"paas:{on_master}", "main:master").returncode == 0
    clone = paas.root / "src" / f"{on_master}-clone"
    r = paas.git(paas.root, "clone", f"paas:{on_master}", str(clone))
    assert r.returncode == 0 and "warning" not in r.stderr, r.output
    assert (clone / "Procfile").exists()
    assert paas.git(clone, "branch", "--show-current").stdout.strip() == "master"
