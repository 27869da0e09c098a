"""Dokku users switch without relearning: what Dokku's deploy harness does, and each alias.

The harness part follows dokku/dokku's tests/test_deploy: push to master as dokku@, post-deploy
steps with `config:set --encoded`, `url`, a check of the answer, `apps:destroy --force`, and an app
whose health check must fail the push.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import APPS_DIR, PaasServer, unique_app, wait_for


def dokku_ssh(paas: PaasServer, *args: str) -> subprocess.CompletedProcess:
    """`ssh dokku@host ...`: the login name Dokku users have in their scripts."""
    cmd = ["ssh", "-F", str(paas.ssh_config), "-o", "User=dokku", "paas", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def enter_with(paas: PaasServer, app: str, script: str) -> subprocess.CompletedProcess:
    """`ssh paas enter <app>` without a terminal, `script` on its stdin."""
    cmd = ["ssh", "-F", str(paas.ssh_config), "paas", "enter", app]
    return subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=60)


def bash(script: str) -> str:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout


def push_master(paas: PaasServer, template: str, app: str) -> subprocess.CompletedProcess:
    src = paas.make_repo(template, app)
    paas.git(src, "remote", "add", "dokku", f"dokku@paas:{app}")
    return subprocess.run(
        ["git", "push", "dokku", "main:master"],
        cwd=src,
        env=paas.env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def style(paas: PaasServer) -> str:
    app = unique_app("dk")
    pushed = push_master(paas, "dokku-style", app)
    assert pushed.returncode == 0, pushed.stderr
    out = pushed.stderr
    assert "app.json: ignoring what paas does not support: dokku" in out
    assert "Running predeploy" in out and "predeploy-ran-as-1000" in out
    assert "Running postdeploy" in out and "postdeploy-ran" in out
    return app


def test_the_deploy_harness_of_dokku(paas: PaasServer, style: str) -> None:
    encoded = base64.b64encode(b"hi there").decode()
    assert dokku_ssh(paas, "config:set", "--encoded", style, f"GREETING={encoded}").returncode == 0
    url = dokku_ssh(paas, "url", style)
    assert url.returncode == 0 and url.stdout.strip() == f"http://{style}.localhost:{paas.http_port}"
    assert paas.get(f"{style}.localhost") == (200, "python/hi there")
    # The Procfile's inline comment is not part of the command; `custom: echo -n` did not fail it.
    info = json.loads(paas.ssh("apps:info", style, "--format", "json").stdout)
    assert info["formation"] == {"custom": 0, "web": 1}


def test_a_failing_health_check_fails_the_push(paas: PaasServer) -> None:
    app = unique_app("dksick")
    assert dokku_ssh(paas, "apps:create", app).returncode == 0
    assert dokku_ssh(paas, "config:set", "--no-restart", app, "UNHEALTHY=1").returncode == 0
    pushed = push_master(paas, "dokku-style", app)
    assert pushed.returncode != 0 and "failed check 'health'" in pushed.stderr
    assert dokku_ssh(paas, "apps:destroy", app, "--force").returncode == 0
    assert dokku_ssh(paas, "apps:exists", app).returncode == 1


def test_a_failing_postdeploy_fails_the_push_and_the_release_stays_live(paas: PaasServer) -> None:
    """Dokku's exit status: a script or CI job sees the failed task. The release went live
    before the task ran, so it stays, and the branch moves to the commit that is live."""
    app = unique_app("dkpost")
    src = paas.make_repo("dokku-style", app)
    manifest = {
        "scripts": {"postdeploy": "echo first-ran; exit 4", "dokku": {"postdeploy": "exit 5"}},
    }
    (src / "app.json").write_text(json.dumps(manifest))
    paas.git(src, "commit", "-qam", "failing postdeploys")
    paas.git(src, "remote", "add", "dokku", f"dokku@paas:{app}")
    pushed = paas.git(src, "push", "dokku", "main:master")
    assert pushed.returncode != 0, pushed.output
    assert "Execution of first deploy postdeploy task failed (exit status 4)" in pushed.stderr
    assert "Execution of postdeploy task failed (exit status 5)" in pushed.stderr  # ran all the same
    assert "first-ran" in pushed.stderr and "Application deployed" in pushed.stderr
    assert paas.get(f"{app}.localhost") == (200, "python/hello")  # live
    sha = paas.git(src, "rev-parse", "HEAD").stdout.strip()
    assert paas.git(src, "ls-remote", "dokku", "master").stdout.split()[0] == sha  # moved
    events = json.loads(paas.ssh("events", "--app", app, "--format", "json").stdout)
    assert any(e["action"] == "postdeploy:failed" for e in events), events

    # The next deploy's Dokku postdeploy fails the same way; that release is live too.
    (src / "server.py").write_text((src / "server.py").read_text().replace("python/", "python2/"))
    paas.git(src, "commit", "-qam", "second")
    pushed = paas.git(src, "push", "dokku", "main:master")
    assert pushed.returncode != 0 and "Execution of postdeploy task failed (exit status 5)" in pushed.stderr
    assert "first deploy" not in pushed.stderr
    assert paas.get(f"{app}.localhost") == (200, "python2/hello")
    again = paas.git(src, "push", "dokku", "main:master")
    assert again.returncode == 0 and "Everything up-to-date" in again.stderr, again.output
    assert dokku_ssh(paas, "apps:destroy", app, "--force").returncode == 0


def test_builder_skip_cleanup_keeps_a_builds_containers_until_the_next(paas: PaasServer) -> None:
    app = unique_app("dkkeep")
    client = docker.from_env()

    def kept() -> dict[str, tuple[str, int]]:
        """The app's build containers: name -> (status, build id)."""
        labels = [f"paas.app={app}", "paas.role=build"]
        found = client.containers.list(all=True, ignore_removed=True, filters={"label": labels})
        return {c.name: (c.status, int(c.labels["paas.build"])) for c in found}

    assert dokku_ssh(paas, "apps:create", app).returncode == 0
    assert dokku_ssh(paas, "builder:set", app, "skip-cleanup", "true").returncode == 0
    src = paas.make_repo("dokku-style", app)
    paas.git(src, "remote", "add", "dokku", f"dokku@paas:{app}")
    pushed = paas.git(src, "push", "dokku", "main:master")
    assert pushed.returncode == 0 and "keeping this build's containers" in pushed.stderr, pushed.output
    first = wait_for(lambda: (k := kept()) and all(s != "running" for s, _ in k.values()) and k, timeout=30)
    assert first and len({b for _, b in first.values()}) == 1, first
    time.sleep(3)  # reconcile passes (every second here) leave them
    assert kept() == first

    (src / "server.py").write_text((src / "server.py").read_text() + "\n")
    paas.git(src, "commit", "-qam", "second")
    assert paas.git(src, "push", "dokku", "main:master").returncode == 0
    second = wait_for(lambda: (k := kept()) and set(k) != set(first) and k, timeout=30)
    builds = {b for _, b in second.values()}
    assert len(builds) == 1 and builds.pop() > max(b for _, b in first.values()), second  # first's went

    cleaned = dokku_ssh(paas, "cleanup", app)
    assert cleaned.returncode == 0, cleaned.stderr
    assert kept() == {}
    assert dokku_ssh(paas, "builder:set", app, "skip-cleanup").returncode == 0
    assert dokku_ssh(paas, "ps:rebuild", app).returncode == 0
    assert wait_for(lambda: kept() == {}, timeout=30)  # removed after the build, as always
    assert dokku_ssh(paas, "apps:destroy", app, "--force").returncode == 0


def test_a_worker_only_app_deploys_and_runs_its_worker(paas: PaasServer) -> None:
    app = unique_app("dkw")
    pushed = push_master(paas, "dokku-worker", app)
    assert pushed.returncode == 0, pushed.stderr
    ps = paas.ssh("ps", app, "--format", "json")
    assert [p["dyno"] for p in json.loads(ps.stdout)] == ["worker.1"]
    assert wait_for(lambda: "worker-alive" in paas.ssh("logs", app, "--ps", "worker", "--num", "5").stdout)
    assert paas.get(f"{app}.localhost")[0] == 404  # no web process: nothing routed


def test_apps_aliases(paas: PaasServer, style: str) -> None:
    assert dokku_ssh(paas, "apps:exists", style).returncode == 0
    missing = dokku_ssh(paas, "apps:exists", "no-such-app")
    assert missing.returncode == 1 and missing.stderr.strip() == "error: app 'no-such-app' does not exist"
    report = dokku_ssh(paas, "apps:report", style)
    assert f"=====> {style} app information" in report.stdout and "App deploy source:   git" in report.stdout
    assert style in json.loads(dokku_ssh(paas, "apps:report", "--format", "json").stdout)
    # `dokku --quiet apps:list` (over SSH after `--`, so that ssh does not read the flag) and the
    # flag after the command.
    for args in (["--", "--quiet", "apps:list"], ["apps:list", "--quiet"]):
        quiet = dokku_ssh(paas, *args)
        assert "=====>" not in quiet.stdout and style in quiet.stdout.split(), quiet.stderr
    assert "=====> My Apps" in dokku_ssh(paas, "apps:list").stdout


def test_urls_domains_and_report(paas: PaasServer, style: str) -> None:
    assert paas.ssh("domains:add", style, f"www.{style}.example.com").returncode == 0
    urls = dokku_ssh(paas, "urls", style).stdout.split()
    assert urls == [
        f"http://{style}.localhost:{paas.http_port}",
        f"http://www.{style}.example.com:{paas.http_port}",
    ]
    assert f"www.{style}.example.com" in dokku_ssh(paas, "domains:report", style).stdout
    assert f"=====> {style}" in dokku_ssh(paas, "report", style).stdout
    assert json.loads(dokku_ssh(paas, "report", style, "--format", "json").stdout)["app"]["name"] == style
    assert paas.ssh("domains:clear", style).returncode == 0


def test_events_switches(paas: PaasServer, style: str) -> None:
    on = dokku_ssh(paas, "events:on")
    assert on.returncode == 0 and "always recorded" in on.stdout
    assert dokku_ssh(paas, "events:off").returncode == 0
    assert "apps:create" in dokku_ssh(paas, "events:list").stdout


def test_config_export_keys_and_clear(paas: PaasServer) -> None:
    app = unique_app("dkc")
    assert paas.ssh("apps:create", app).returncode == 0
    value = 'it\'s "quoted" $HOME'
    encoded = base64.b64encode(value.encode()).decode()
    assert paas.ssh("config:set", "--no-restart", "--encoded", app, f"A={encoded}", "B=Yg==").returncode == 0
    exported = dokku_ssh(paas, "config:export", app).stdout
    assert (
        subprocess.run(["bash", "-c", exported + '\nprintf %s "$A"'], capture_output=True, text=True).stdout
        == value
    )
    shell = dokku_ssh(paas, "config:export", app, "--format", "shell").stdout.strip()
    assert (
        subprocess.run(["bash", "-c", f"env {shell} printenv B"], capture_output=True, text=True).stdout
        == "b\n"
    )
    assert json.loads(dokku_ssh(paas, "config:export", app, "--format", "json").stdout) == {
        "A": value,
        "B": "b",
    }
    assert dokku_ssh(paas, "config:keys", app).stdout.split() == ["A", "B"]
    assert dokku_ssh(paas, "config:clear", app, "--no-restart").returncode == 0
    assert dokku_ssh(paas, "config:keys", app).stdout == ""
    assert paas.ssh("apps:destroy", app, "--force").returncode == 0


def test_ps_rebuild_run_detached_and_enter(paas: PaasServer, style: str) -> None:
    before = json.loads(paas.ssh("releases", style, "--format", "json").stdout)[0]["version"]
    rebuilt = dokku_ssh(paas, "ps:rebuild", style)
    assert rebuilt.returncode == 0 and "Rebuilding" in rebuilt.stdout, rebuilt.stderr
    after = json.loads(paas.ssh("releases", style, "--format", "json").stdout)
    assert after[0]["version"] == before + 1 and after[0]["commit"] == after[1]["commit"]
    assert dokku_ssh(paas, "ps:report", style).returncode == 0

    detached = dokku_ssh(paas, "run:detached", style, "sleep 2; echo done-detached")
    assert detached.returncode == 0 and detached.stdout.strip().startswith(f"paas-{style}-run-")
    entered = dokku_ssh(paas, "enter", style, "web", "--", "id", "-u")
    assert entered.returncode == 0 and entered.stdout.strip() == "1000", entered.stderr
    shell = enter_with(paas, style, "echo inside-$DYNO; exit 3\n")
    assert shell.returncode == 3 and "inside-web.1" in shell.stdout, shell.stderr
    assert dokku_ssh(paas, "run", style, "echo shell-$0").stdout.strip() == "shell-bash"
    # `scheduler:set <app> shell`: what `run` hands its command to and `enter` logs in to.
    assert dokku_ssh(paas, "scheduler:set", style, "shell", "sh").returncode == 0
    try:
        assert dokku_ssh(paas, "run", style, "echo shell-$0").stdout.strip() == "shell-sh"
        login = enter_with(paas, style, "echo login-$0\n")
        assert login.returncode == 0 and "login-sh" in login.stdout, (login.stdout, login.stderr)
    finally:
        dokku_ssh(paas, "scheduler:set", style, "shell")
    time.sleep(3)
    # The detached one-off ran to its end and was cleaned up by reconcile.
    assert wait_for(
        lambda: (
            f"paas-{style}-run-"
            not in subprocess.run(
                ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True
            ).stdout
        ),
        timeout=30,
    )


def app_tar(template: str, prefix: str = "") -> bytes:
    """A tar of tests/e2e/apps/<template> (under `prefix/`, as GitHub's archives are)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(APPS_DIR / template), arcname=prefix or ".")
    return buf.getvalue()


def test_git_from_archive_deploys_a_tar_from_stdin(paas: PaasServer) -> None:
    app = unique_app("dkarch")
    assert dokku_ssh(paas, "apps:create", app).returncode == 0
    cmd = [
        "ssh",
        "-F",
        str(paas.ssh_config),
        "paas",
        "git:from-archive",
        "--archive-type",
        "tar.gz",
        app,
        "--",
    ]
    sent = subprocess.run(
        cmd, input=app_tar("dokku-style", "dokku-style-1.0"), capture_output=True, timeout=600
    )
    assert sent.returncode == 0, sent.stderr.decode()
    assert b"Application deployed" in sent.stdout
    assert paas.get(f"{app}.localhost") == (200, "python/hello")
    sha = dokku_ssh(paas, "git:report", app, "--git-sha").stdout.strip()
    assert len(sha) == 40
    assert dokku_ssh(paas, "config:get", app, "GIT_REV").stdout.strip() == sha  # rev-env-var
    # The commit is on the deploy branch: a clone gets the archive's files.
    clone = paas.root / f"clone-{app}"
    assert paas.git(paas.root, "clone", "-q", f"paas:{app}", str(clone)).returncode == 0
    assert (clone / "Procfile").is_file() and (clone / "server.py").is_file()
    # A dangerous archive is refused in one line, and what runs keeps running.
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        link = tarfile.TarInfo("pwn")
        link.type, link.linkname = tarfile.SYMTYPE, "/tmp"
        tar.addfile(link)
    refused = subprocess.run(
        ["ssh", "-F", str(paas.ssh_config), "paas", "git:from-archive", app, "--"],
        input=evil.getvalue(),
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert refused.stderr.decode() == "error: Archive contains symlinks with absolute targets\n"
    assert paas.get(f"{app}.localhost") == (200, "python/hello")
    assert dokku_ssh(paas, "apps:destroy", app, "--force").returncode == 0


def test_git_from_image_deploys_a_local_image(paas: PaasServer, tmp_path: Path) -> None:
    client = docker.from_env()
    tag = f"paas-test-from-image-{uuid.uuid4().hex[:8]}:1"
    (tmp_path / "server.py").write_text((APPS_DIR / "dokku-style" / "server.py").read_text())
    (tmp_path / "Dockerfile").write_text(
        "FROM paas/stack:latest\nCOPY server.py /srv/server.py\nENV PORT=8080\nEXPOSE 8080\n"
        'CMD ["python3", "/srv/server.py"]\n'
    )
    client.images.build(path=str(tmp_path), tag=tag, rm=True)
    app = unique_app("dkimg")
    try:
        assert dokku_ssh(paas, "apps:create", app).returncode == 0
        deployed = dokku_ssh(paas, "git:from-image", app, tag)
        assert deployed.returncode == 0, deployed.stderr
        assert "runs as root" in deployed.stdout  # the Dockerfile rules: no root at run time
        assert paas.get(f"{app}.localhost") == (200, "python/hello")
        assert dokku_ssh(paas, "git:report", app, "--git-source-image").stdout.strip() == tag
        rebuilt = dokku_ssh(paas, "ps:rebuild", app)  # builds FROM the image again
        assert rebuilt.returncode == 0, rebuilt.stderr
        # The platform's own images are not apps.
        ours = dokku_ssh(paas, "git:from-image", app, "paas/stack:latest")
        assert ours.returncode == 1 and "the platform's own images" in ours.stderr
        assert dokku_ssh(paas, "apps:destroy", app, "--force").returncode == 0
    finally:
        client.images.remove(tag, force=True)


def test_deploy_branch_and_properties_reach_the_push(paas: PaasServer) -> None:
    app = unique_app("dkbranch")
    assert dokku_ssh(paas, "apps:create", app).returncode == 0
    assert dokku_ssh(paas, "git:set", app, "deploy-branch", "release").returncode == 0
    assert dokku_ssh(paas, "git:set", app, "rev-env-var", "COMMIT_SHA").returncode == 0
    src = paas.make_repo("dokku-style", app)
    paas.git(src, "remote", "add", "dokku", f"dokku@paas:{app}")
    refused = paas.git(src, "push", "dokku", "main")
    assert refused.returncode != 0 and "only release deploys" in refused.output
    pushed = paas.git(src, "push", "dokku", "main:release")
    assert pushed.returncode == 0, pushed.output
    config = json.loads(paas.ssh("config", app, "--format", "json").stdout)
    assert "GIT_REV" not in config and len(config["COMMIT_SHA"]) == 40
    assert dokku_ssh(paas, "git:report", app, "--git-computed-deploy-branch").stdout == "release\n"
    assert dokku_ssh(paas, "repo:gc", app).returncode == 0
    assert dokku_ssh(paas, "apps:destroy", app, "--force").returncode == 0


def post_size(paas: PaasServer, host: str, size: int) -> int:
    """The status of a POST of `size` bytes through the router."""
    conn = http.client.HTTPConnection("127.0.0.1", paas.http_port, timeout=10)
    try:
        conn.request("POST", "/", body=b"x" * size, headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


def test_nginx_properties_reach_the_router(paas: PaasServer, style: str) -> None:
    host = f"{style}.localhost"
    assert post_size(paas, host, 4096) != 413
    assert dokku_ssh(paas, "nginx:set", style, "client-max-body-size", "1k").returncode == 0
    assert post_size(paas, host, 4096) == 413
    report = json.loads(dokku_ssh(paas, "nginx:report", style, "--format", "json").stdout)
    assert report["client-max-body-size"] == report["computed-client-max-body-size"] == "1k"
    # A value nginx refuses (busy buffers larger than the buffers) is put back, in one line.
    refused = dokku_ssh(paas, "nginx:set", style, "proxy-busy-buffers-size", "1g")
    assert refused.returncode == 1 and "nginx -t" in refused.stderr and refused.stderr.count("\n") == 1
    assert dokku_ssh(paas, "nginx:report", style, "--nginx-proxy-busy-buffers-size").stdout == "\n"
    # An injection attempt never reaches nginx.
    bad = dokku_ssh(paas, "nginx:set", style, "proxy-read-timeout", "'1s; return 200 pwned'")
    assert bad.returncode == 1 and "invalid value" in bad.stderr
    assert dokku_ssh(paas, "nginx:set", style, "client-max-body-size").returncode == 0
    assert post_size(paas, host, 4096) != 413


def test_nginx_log_and_address_properties_reach_the_router(paas: PaasServer, style: str) -> None:
    host = f"{style}.localhost"
    log = Path("/var/log/nginx") / f"paas-test-{paas.http_port}-{style}.log"
    try:
        assert dokku_ssh(paas, "nginx:set", style, "access-log-path", str(log)).returncode == 0
        assert dokku_ssh(paas, "nginx:set", style, "access-log-format", "combined").returncode == 0
        assert dokku_ssh(paas, "nginx:set", style, "bind-address-ipv4", "127.0.0.1").returncode == 0
        assert dokku_ssh(paas, "nginx:set", style, "proxy-keepalive", "4").returncode == 0
        conf = (paas.data_dir / "nginx" / "conf" / "apps" / f"{style}.conf").read_text()
        assert f"listen 127.0.0.1:{paas.http_port};" in conf and "keepalive 4;" in conf
        assert post_size(paas, host, 10) not in (502, 504)
        deadline = time.time() + 5  # the access log is buffered (flush=1s)
        while time.time() < deadline and not (log.is_file() and "POST / " in log.read_text()):
            time.sleep(0.2)
        assert "POST / " in log.read_text()
        # Where nginx's master (root) would append, outside its log folder: refused in one line.
        for key, bad in [
            ("access-log-path", "/etc/passwd"),
            ("error-log-path", f"{paas.data_dir}/paas.db"),
            ("access-log-path", "/var/log/nginx/../../../etc/shadow"),
            ("bind-address-ipv4", "192.0.2.1"),
        ]:
            refused = dokku_ssh(paas, "nginx:set", style, key, bad)
            assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    finally:
        for key in ("access-log-path", "access-log-format", "bind-address-ipv4", "proxy-keepalive"):
            dokku_ssh(paas, "nginx:set", style, key)
        log.unlink(missing_ok=True)
    assert post_size(paas, host, 10) not in (502, 504)
