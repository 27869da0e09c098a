"""Maintenance mode end to end: real pushes over OpenSSH, real nginx answering 503, a restart."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PaasServer, running_server, unique_app

FIXTURES = Path(__file__).resolve().parents[2] / "plugins" / "maintenance" / "fixtures"


@pytest.fixture(scope="module")
def server() -> Iterator[PaasServer]:
    """A server of this module's own (it is restarted), in a folder nginx workers can search:
    pytest's tmp folders are 0700, and workers run as www-data when the suite runs as root."""
    root = Path(tempfile.mkdtemp(prefix="paas-maint-e2e-"))
    os.chmod(root, 0o755)
    try:
        with running_server(root) as started:
            yield started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def request(server: PaasServer, host: str, path: str = "/", method: str = "GET") -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        conn.request(method, path, body=b"x=1" if method == "POST" else None, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
    finally:
        conn.close()


def releases(server: PaasServer, app: str) -> int:
    return len(json.loads(ok(server.ssh("releases", app, "--format", "json"))))


def test_maintenance_answers_503_through_deploys_stops_and_restarts(server: PaasServer) -> None:
    app = unique_app("maint")
    host, custom = f"{app}.localhost", f"www.{app}.example"
    src = server.make_repo("stdlib-web", app)
    server.git(src, "remote", "add", "paas", f"paas:{app}")
    ok(server.git(src, "push", "paas", "main"))
    ok(server.ssh("domains:add", app, custom))
    assert server.get(host) == (200, "version 1 web.1\n")

    out = ok(server.ssh("maintenance:on", app))
    assert "plain page" in out and "has no maintenance.html" in out
    for h, path, method in [(host, "/", "GET"), (host, "/any/path?q=1", "GET"), (custom, "/", "POST")]:
        status, headers, body = request(server, h, path, method)
        assert status == 503, (h, path, method, status)
        assert f"{app} is down for maintenance" in body
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-store"
    assert "Maintenance enabled:           true" in ok(server.ssh("maintenance:report", app))

    # A push while on builds and deploys a new release; the router keeps answering 503, now
    # with the page the new commit ships.
    shutil.copy(FIXTURES / "maintenance.html", src / "maintenance.html")
    (src / "VERSION").write_text("2\n")
    ok(server.git(src, "add", "-A"))
    ok(server.git(src, "commit", "-q", "-m", "a maintenance page"))
    before = releases(server, app)
    pushed = server.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output
    assert "maintenance mode is on" in pushed.output
    assert releases(server, app) == before + 1
    custom_page = (FIXTURES / "maintenance.html").read_text()
    assert request(server, host, "/any/path")[::2] == (503, custom_page)
    assert request(server, host, "/maintenance.html")[::2] == (503, custom_page)

    # No web process at all: still answered. A restart of the server keeps it on.
    ok(server.ssh("ps:stop", app))
    assert request(server, host)[::2] == (503, custom_page)
    assert server.stop() == 0
    server.start()
    assert request(server, custom, "/x")[::2] == (503, custom_page)
    assert "Maintenance enabled:           true" in ok(server.ssh("maintenance:report", app))
    ok(server.ssh("ps:start", app))
    assert request(server, host)[0] == 503

    ok(server.ssh("maintenance:off", app))
    assert server.get(host) == (200, "version 2 web.1\n")
    assert server.get(custom, "/maintenance.html") == (200, "version 2 web.1\n")
    assert "Maintenance enabled:           false" in ok(server.ssh("maintenance:report", app))
    events = ok(server.ssh("events", "--app", app, "-n", "200"))
    assert "maintenance:on" in events and "maintenance:off" in events
    assert "plugin:failed" not in events


def test_bad_app_names_are_one_line_errors(server: PaasServer) -> None:
    for args, message in [
        (("maintenance:on", "Bad_Name"), "error: invalid app name 'Bad_Name'"),
        (("maintenance:off", "no-such-app"), "error: app 'no-such-app' does not exist"),
    ]:
        r = server.ssh(*args)
        assert r.returncode == 1
        assert r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr
        assert r.stdout == ""
