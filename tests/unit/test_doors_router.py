"""Doors 5, 7, 8 in the router: stream paths to the evented gunicorn, the 404 fence for names
under PAAS_DOMAIN, login/API rate limits, and a pid file that must name our nginx."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from paas.core import manifest
from paas.router.nginx import Router
from paas.settings import Settings


@pytest.fixture
def router(tmp_path: Path) -> Router:
    return Router(
        Settings(data_dir=tmp_path, http_port=18080, http_bind="127.0.0.1", domain="apps.example.com")
    )


def nginx_t(router: Router) -> subprocess.CompletedProcess:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.run(
        [nginx, "-t", "-p", str(router.prefix), "-c", str(router.main_conf)], capture_output=True, text=True
    )


def test_main_config_fences_the_apps_domain_and_limits_logins(router: Router) -> None:
    router.set_dashboard("paas.apps.example.com", "127.0.0.1:5000", streams="127.0.0.1:5001")
    main = router.main_conf.read_text()
    assert "server_name apps.example.com *.apps.example.com;" in main
    assert "zone=paas_login" in main and "limit_req_status 429;" in main
    dash = (router.apps_dir / "_dashboard.conf").read_text()
    assert "location = /login {\n        limit_req zone=paas_login" in dash
    assert "limit_conn paas_login_conn 10;" in dash and "zone=paas_login_conn" in main
    assert dash.count("limit_req zone=paas_bad_token") == 2  # /api/ and the API's streams
    assert "proxy_pass http://127.0.0.1:5001;" in dash  # the streams
    assert nginx_t(router).returncode == 0


def test_a_pid_file_naming_another_process_is_never_signalled(router: Router) -> None:
    router.ensure_layout()
    router.pid_path.write_text(str(os.getpid()))  # a stale file whose pid is now someone else
    assert router.running_pid() is None
    assert router.reload() is False  # nothing signalled (we would have got SIGHUP)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        router.pid_path.write_text(str(sleeper.pid))
        router.stop(timeout=0.5)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_our_nginx_is_recognised(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    router = Router(Settings(data_dir=tmp_path, http_port=port, http_bind="127.0.0.1", https_port=0))
    router.start()
    try:
        pid = router.running_pid()
        assert pid is not None and router.reload()
    finally:
        router.stop()
    assert router.running_pid() is None


@pytest.mark.parametrize("path", ["/health\x1b[2J", "/he\nalth", "/a b", "/\x00", "health", "/\\x"])
def test_health_check_paths_are_checked_when_app_json_is_parsed(path: str) -> None:
    """Door 8: a control character in a health-check path is a clear error at parse time."""
    text = json.dumps({"healthchecks": {"web": [{"type": "startup", "path": path}]}})
    with pytest.raises(manifest.AppJsonError, match="must be a URL path"):
        manifest.parse(text)


def test_health_checks_that_could_run_for_hours_are_refused() -> None:
    """Door 5: a deploy waits on its checks (a web request or a push with it): their worst case
    is capped. Before: 100 attempts x (600 s + 600 s) were accepted."""
    slow = {"type": "startup", "path": "/", "attempts": 100, "timeout": 600, "wait": 600}
    with pytest.raises(manifest.AppJsonError, match="the limit is 600 s"):
        manifest.parse(json.dumps({"healthchecks": {"web": [slow]}}))
    fine = {"type": "startup", "path": "/", "attempts": 10, "timeout": 5, "wait": 2}
    assert manifest.parse(json.dumps({"healthchecks": {"web": [fine]}})).healthchecks["web"][0].attempts == 10
