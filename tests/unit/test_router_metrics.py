"""The router's metrics lines: each request tagged with its app and the release that answered."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from paas.core.routes import Route, RouteExtras
from paas.errors import PaasError
from paas.router.nginx import Router
from paas.settings import Settings


def _stub(status: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]
    r = Router(Settings(data_dir=tmp_path, http_port=port, http_bind="127.0.0.1", https_port=0))
    yield r
    r.stop()


def test_each_request_is_tagged_with_the_release_that_answered(router: Router, tmp_path: Path) -> None:
    good, bad = _stub(200), _stub(500)
    try:
        a, b = (f"127.0.0.1:{s.server_address[1]}" for s in (good, bad))
        log = tmp_path / "nginx" / "logs" / "metrics.log"
        extras = RouteExtras()
        extras.set_metrics_log(str(log))
        router.set_route(Route("my-app", ["my-app.localhost"], sorted([a, b]), extras, {a: 7, b: 8}))
        router.start()
        for _ in range(6):
            conn = http.client.HTTPConnection("127.0.0.1", router.settings.http_port, timeout=5)
            conn.request("GET", "/", headers={"Host": "my-app.localhost"})
            conn.getresponse().read()
            conn.close()
        access = tmp_path / "nginx" / "logs" / "access.log"
        deadline = time.monotonic() + 5  # the buffered logs are flushed within a second
        while time.monotonic() < deadline and min(_count(log), _count(access)) < 6:
            time.sleep(0.1)
        lines = [ln.split() for ln in log.read_text().splitlines()]
    finally:
        good.shutdown()
        bad.shutdown()
    assert len(lines) == 6
    assert {ln[1] for ln in lines} == {"my-app"}
    assert {(ln[2], ln[3]) for ln in lines} == {("7", "200"), ("8", "500")}  # round robin over both
    for ln in lines:
        float(ln[0]), int(ln[4]), float(ln[5]), float(ln[6])  # msec, bytes, upstream and request time
    assert _count(access) == 6  # the usual access log still gets every request


def test_a_metrics_log_path_must_be_plain() -> None:
    with pytest.raises(PaasError):
        RouteExtras().set_metrics_log("/tmp/x.log; include /etc/passwd")
    with pytest.raises(PaasError):
        RouteExtras().set_metrics_log("/var/../etc/x.log")


def test_without_a_metrics_log_the_route_is_as_before(router: Router) -> None:
    router.set_route(Route("plain", ["plain.localhost"], ["127.0.0.1:1"], RouteExtras(), {"127.0.0.1:1": 3}))
    text = (router.apps_dir / "plain.conf").read_text()
    assert "map " not in text and "log_format" not in text and "access_log" not in text


def test_an_app_name_that_could_break_out_of_the_log_format_is_refused(
    router: Router, tmp_path: Path
) -> None:
    extras = RouteExtras()
    extras.set_metrics_log(str(tmp_path / "metrics.log"))
    for evil in ("a'b", "a b", "a;b", "a$b"):
        with pytest.raises(PaasError, match="unsafe"):
            router.set_route(Route(evil, ["x.localhost"], ["127.0.0.1:1"], extras, {"127.0.0.1:1": 1}))
    assert router.routed_apps() == []
