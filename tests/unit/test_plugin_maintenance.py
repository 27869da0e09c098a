"""The maintenance plugin without docker: state rules, the page chosen, the nginx block it renders."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from paas import commands
from paas.core import names
from paas.core.context import Context
from paas.core.routes import RouteExtras
from paas.errors import PaasError
from paas.plugins import plugins
from paas.scheduler import docker_local
from paas.services import routing
from paas.settings import Settings

plugins(set())  # loading the built-in plugins makes them importable as paas_plugins.<name>
from paas_plugins.maintenance import service  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A data dir nginx workers (www-data when tests run as root) can search, unlike pytest's."""
    path = Path(tempfile.mkdtemp(prefix="paas-maint-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ctx(open_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setattr(docker_local, "app_containers", lambda *a, **k: [])  # nothing runs
    return Context.open(Settings(data_dir=open_dir, http_port=18080, http_bind="127.0.0.1"), is_admin=True)


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


def conf(ctx: Context, app: str) -> Path:
    return routing.router(ctx).apps_dir / f"{app}.conf"


def nginx_t(ctx: Context) -> subprocess.CompletedProcess:
    router = routing.router(ctx)
    return subprocess.run(
        [NGINX, "-t", "-p", str(router.prefix), "-c", str(router.main_conf)], capture_output=True, text=True
    )


def deploy_commit(ctx: Context, app: str, files: dict[str, bytes]) -> str:
    """A commit in the app's repo and a succeeded release of it, as a push leaves them."""
    path = names.repo_path(ctx.settings, app)
    repo = Repo(str(path)) if path.exists() else Repo.init_bare(str(path), mkdir=True)
    with repo:
        tree = Tree()
        for name, data in files.items():
            blob = Blob.from_string(data)
            repo.object_store.add_object(blob)
            tree.add(name.encode(), 0o100644, blob.id)
        repo.object_store.add_object(tree)
        commit = Commit()
        commit.tree = tree.id
        commit.author = commit.committer = b"Test <test@example.com>"
        commit.commit_time = commit.author_time = int(time.time())
        commit.commit_timezone = commit.author_timezone = 0
        commit.message = b"test"
        repo.object_store.add_object(commit)
        sha = commit.id.decode()
    record = ctx.store.get_app(app)
    assert record is not None
    build = ctx.store.create_build(record.id, sha, "test")
    release = ctx.store.create_release(record.id, build, {}, {"web": 1}, "test", "test")
    ctx.store.set_release_status(release.id, "succeeded")
    return sha


def test_on_off_report_and_state_rules(ctx: Context) -> None:
    assert run(ctx, "apps:create", "web1")[0] == 0
    assert run(ctx, "apps:create", "web2")[0] == 0
    code, out, _ = run(ctx, "maintenance:report", "web1")
    assert code == 0 and "Maintenance enabled:           false" in out

    code, out, err = run(ctx, "maintenance:on", "web1")
    assert code == 0, err
    assert "plain page" in out
    # Nothing runs, yet the router keeps a server block that answers 503.
    text = conf(ctx, "web1").read_text()
    assert "return 503;" in text and "proxy_pass" not in text
    assert nginx_t(ctx).returncode == 0
    assert "already on" in run(ctx, "maintenance:on", "web1")[1]

    code, out, _ = run(ctx, "maintenance:report", "--format", "json")
    assert code == 0
    assert '"web1": {\n    "enabled": true' in out and '"web2": {\n    "enabled": false' in out
    actions = [e["action"] for e in ctx.store.list_events(app="web1")]
    assert [a for a in actions if a.startswith("maintenance")] == ["maintenance:on"]

    assert run(ctx, "maintenance:off", "web1")[0] == 0
    assert not conf(ctx, "web1").exists()  # no web process: no route at all, as before
    assert not service.page_dir(ctx.settings, "web1").exists()
    assert "already off" in run(ctx, "maintenance:off", "web1")[1]
    assert "Maintenance enabled:           false" in run(ctx, "maintenance:report", "web1")[1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (("maintenance:on", "Bad;name"), "error: invalid app name 'Bad;name'"),
        (("maintenance:off", "../etc"), "error: invalid app name '../etc'"),
        (("maintenance:report", "nope"), "error: app 'nope' does not exist"),
        (("maintenance:on",), "error: Missing argument 'APP'."),
    ],
)
def test_bad_input_is_one_line(ctx: Context, argv: tuple[str, ...], message: str) -> None:
    code, _, err = run(ctx, *argv)
    assert code == 1
    assert err.startswith(message)
    assert "Traceback" not in err
    if argv[1:]:
        assert err.count("\n") == 1


def test_the_block_serves_the_page_for_every_path_and_passes_nginx_t(ctx: Context) -> None:
    run(ctx, "apps:create", "shop")
    sha = deploy_commit(ctx, "shop", {"maintenance.html": b"<h1>back soon</h1>\n"})
    code, out, _ = run(ctx, "maintenance:on", "shop")
    assert code == 0 and f"maintenance.html of commit {sha[:7]}" in out
    page = service.page_path(ctx.settings, "shop")
    assert page.read_text() == "<h1>back soon</h1>\n"
    assert stat.S_IMODE(page.stat().st_mode) == 0o644
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o755
    text = conf(ctx, "shop").read_text()
    assert "error_page 503 /maintenance.html;" in text
    assert "location = /maintenance.html {" in text and "internal;" in text
    assert f"root {page.parent};" in text
    assert nginx_t(ctx).returncode == 0, nginx_t(ctx).stderr


def test_page_rules_missing_too_large_and_new_commits(ctx: Context) -> None:
    run(ctx, "apps:create", "shop")
    app = ctx.store.get_app("shop")
    assert app is not None
    assert service.refresh_page(ctx, app).source == "plain"  # never deployed
    assert "shop is down for maintenance" in service.page_path(ctx.settings, "shop").read_text()
    deploy_commit(ctx, "shop", {"index.html": b"hi"})
    assert "has no maintenance.html" in service.refresh_page(ctx, app).detail
    deploy_commit(ctx, "shop", {"maintenance.html": b"x" * (service.MAX_PAGE + 1)})
    assert "larger than 256 KiB" in service.refresh_page(ctx, app).detail
    assert service.page_path(ctx.settings, "shop").read_text().startswith("<!DOCTYPE html>")

    # A deploy while on refreshes the page from the deployed release; while off it does nothing.
    run(ctx, "maintenance:on", "shop")
    deploy_commit(ctx, "shop", {"maintenance.html": "v2 ✓".encode()})
    release = ctx.store.current_release(app.id)
    assert release is not None
    service.after_deploy(ctx, app, release)
    assert service.page_path(ctx.settings, "shop").read_text() == "v2 ✓"


def test_the_plain_page_escapes_nothing_it_should_not(ctx: Context) -> None:
    assert "<p>my-app is down for maintenance." in service.plain_page("my-app")
    assert "&lt;b&gt;" in service.plain_page("<b>")


def test_rename_moves_and_destroy_removes(ctx: Context) -> None:
    run(ctx, "apps:create", "old")
    assert run(ctx, "maintenance:on", "old")[0] == 0
    assert run(ctx, "apps:rename", "old", "new")[0] == 0
    assert not service.page_dir(ctx.settings, "old").exists()
    assert service.page_path(ctx.settings, "new").is_file()
    assert not conf(ctx, "old").exists() and "server_name new." in conf(ctx, "new").read_text()
    assert "true" in run(ctx, "maintenance:report", "new")[1]
    app = ctx.store.get_app("new")
    ctx.plugins.call_post("paas_app_destroyed", ctx=ctx, app=app)  # apps:destroy's hook, without docker
    assert not service.page_dir(ctx.settings, "new").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx workers run as this user unless root")
def test_a_page_workers_cannot_reach_falls_back_to_nginx_503(ctx: Context) -> None:
    run(ctx, "apps:create", "shop")
    os.chmod(ctx.settings.data_dir, 0o700)
    try:
        code, out, _ = run(ctx, "maintenance:on", "shop")
        assert code == 0
        assert f"workers cannot read {ctx.settings.data_dir}" in out
        text = conf(ctx, "shop").read_text()
        assert "return 503;" in text and "error_page" not in text
        app = ctx.store.get_app("shop")
        assert app is not None
        extras = RouteExtras()
        service.nginx_extras(ctx, app, extras)
        assert extras.locations == {"/": ["add_header Cache-Control no-store always", "return 503"]}
    finally:
        os.chmod(ctx.settings.data_dir, 0o755)


def test_a_router_refusal_leaves_the_state_as_it_was(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    run(ctx, "apps:create", "shop")

    def refuse(ctx: Context, app_name: str) -> None:
        raise PaasError("router config rejected by nginx -t: test")

    monkeypatch.setattr(routing, "sync_app_route", refuse)
    code, _, err = run(ctx, "maintenance:on", "shop")
    assert code == 1 and err == "error: router config rejected by nginx -t: test\n"
    assert "false" in run(ctx, "maintenance:report", "shop")[1]
