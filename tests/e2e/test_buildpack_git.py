"""Custom buildpacks fetched from git URLs (.buildpacks and BUILDPACK_URL), served by a real
`git daemon` in a container of the test's own (no outside git host is reachable here)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import docker

from paas.core import names, networks
from paas.settings import Settings
from tests.e2e.conftest import APPS_DIR, PaasServer, unique_app, wait_for


def bare_repo(root: Path, template: str) -> None:
    work = root / "work" / template
    shutil.copytree(APPS_DIR / template, work)
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bp"]):
        subprocess.run(["git", *args], cwd=work, check=True, env=env)
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(root / "srv" / f"{template}.git")], check=True
    )


def test_buildpacks_from_git_urls(paas: PaasServer, tmp_path: Path) -> None:
    from paas.buildpacks.stack import DEFAULT_STACK

    for template in ("buildpack-greeting", "buildpack-finisher"):
        bare_repo(tmp_path, template)
    client = docker.from_env()
    daemon = client.containers.run(
        DEFAULT_STACK.image,
        ["git", "daemon", "--reuseaddr", "--export-all", "--base-path=/srv", "--listen=0.0.0.0", "/srv"],
        name=f"paas-test-gitd-{uuid.uuid4().hex[:6]}",
        volumes={str(tmp_path / "srv"): {"bind": "/srv", "mode": "ro"}},
        detach=True,
        labels={"paas.test": "git-daemon"},
    )
    try:
        # The stand-in for a git host on the internet: builds run on a network of their own (no
        # route to other bridges), so the daemon joins the app's build network.
        app = unique_app("gitbp")
        settings = Settings(data_dir=paas.data_dir)
        build_net = networks.ensure(
            client,
            names.build_network(settings.instance_id, app),
            settings.instance_id,
            app,
            settings.network_pool,
            settings.locks_dir / "networks.lock",
            prefix=28,
        )
        client.networks.get(build_net).connect(daemon)
        daemon.reload()
        ip = daemon.attrs["NetworkSettings"]["Networks"][build_net]["IPAddress"]

        def listening() -> bool:
            try:
                socket.create_connection((ip, 9418), timeout=0.5).close()
                return True
            except OSError:
                return False

        assert wait_for(listening, timeout=20)
        base = f"git://{ip}"
        src = paas.make_repo("custom-app", app)
        paas.git(src, "remote", "add", "paas", f"paas:{app}")
        (src / ".buildpacks").write_text(
            f"{base}/buildpack-greeting.git\n{base}/buildpack-finisher.git#main\n"
        )
        paas.git(src, "add", "-A")
        paas.git(src, "commit", "-qm", "buildpacks from git")
        r = paas.git(src, "push", "paas", "main")
        assert r.returncode == 0, r.output
        assert f"Fetching buildpack {base}/buildpack-greeting.git" in r.stderr
        assert f"Fetching buildpack {base}/buildpack-finisher.git (main)" in r.stderr
        body = paas.get(f"{app}.localhost", "/index.txt")[1]
        assert body.startswith("HELLO FROM A CUSTOM BUILDPACK") and "exported=yes" in body

        # BUILDPACK_URL (a config var) names one buildpack; the app now ships its shout.txt itself.
        (src / ".buildpacks").unlink()
        (src / "shout.txt").write_text("SHIPPED\n")
        paas.git(src, "add", "-A")
        paas.git(src, "commit", "-qm", "one buildpack")
        assert paas.ssh("config:set", app, f"BUILDPACK_URL={base}/buildpack-finisher.git").returncode == 0
        r = paas.git(src, "push", "paas", "main")
        assert r.returncode == 0, r.output
        assert "Greeting app detected" not in r.stderr and "Finisher app detected" in r.stderr
        assert paas.get(f"{app}.localhost", "/index.txt") == (200, "SHIPPED\nexported=no\n")

        # A URL that does not answer fails the build with a clear message; the app keeps serving.
        assert paas.ssh("config:set", app, "BUILDPACK_URL=git://127.0.0.1/nothing.git").returncode == 0
        (src / "shout.txt").write_text("NEVER\n")
        paas.git(src, "commit", "-qam", "bad url")
        r = paas.git(src, "push", "paas", "main")
        assert r.returncode != 0 and "could not fetch the buildpack git://127.0.0.1/nothing.git" in r.stderr
        assert paas.get(f"{app}.localhost", "/index.txt") == (200, "SHIPPED\nexported=no\n")
    finally:
        daemon.remove(force=True)
