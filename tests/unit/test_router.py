import shutil
import subprocess
from pathlib import Path

import pytest

from paas.core.routes import Route
from paas.errors import PaasError
from paas.router.nginx import Router
from paas.settings import Settings


@pytest.fixture
def router(tmp_path: Path) -> Router:
    return Router(Settings(data_dir=tmp_path, http_port=18080, http_bind="127.0.0.1"))


def test_rendered_config_passes_nginx_t(router: Router) -> None:
    router.set_route(Route("hello", ["hello.localhost"], ["127.0.0.1:32768", "127.0.0.1:32769"]))
    text = (router.apps_dir / "hello.conf").read_text()
    assert "server_name hello.localhost;" in text
    assert "server 127.0.0.1:32768" in text and "server 127.0.0.1:32769" in text
    result = subprocess.run(
        [
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-t",
            "-p",
            str(router.prefix),
            "-c",
            str(router.main_conf),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_no_upstreams_removes_the_route(router: Router) -> None:
    router.set_route(Route("hello", ["hello.localhost"], ["127.0.0.1:1"]))
    router.set_route(Route("hello", ["hello.localhost"], []))
    assert router.routed_apps() == []


@pytest.mark.parametrize("host", ["evil.com; include /etc/passwd", "a b", "x{y}", "a\nb"])
def test_unsafe_values_never_reach_the_config(router: Router, host: str) -> None:
    with pytest.raises(PaasError, match="unsafe"):
        router.set_route(Route("hello", [host], ["127.0.0.1:1"]))
    assert router.routed_apps() == []


def test_a_config_nginx_rejects_is_never_installed(router: Router) -> None:
    router.set_route(Route("good", ["good.localhost"], ["127.0.0.1:1"]))
    # Two apps claiming one upstream name is impossible, but a duplicate server_name with a
    # conflicting listen is fine; force a real nginx -t failure with an invalid port instead.
    with pytest.raises(PaasError, match="nginx -t"):
        router.set_route(Route("bad", ["bad.localhost"], ["127.0.0.1:99999"]))
    assert router.routed_apps() == ["good"]


def nginx_t(router: Router) -> subprocess.CompletedProcess:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.run(
        [nginx, "-t", "-p", str(router.prefix), "-c", str(router.main_conf)], capture_output=True, text=True
    )


def test_the_dashboard_block_routes_paas_domain_and_is_no_app(router: Router) -> None:
    router.set_route(Route("hello", ["hello.localhost"], ["127.0.0.1:32768"]))
    router.set_dashboard("paas.localhost", "127.0.0.1:5000")
    text = (router.apps_dir / "_dashboard.conf").read_text()
    assert "server_name paas.localhost;" in text
    assert "proxy_pass http://127.0.0.1:5000;" in text
    assert "proxy_read_timeout 1h;" in text  # live log streams stay open
    assert nginx_t(router).returncode == 0
    assert router.routed_apps() == ["hello"]
    router.set_dashboard("paas.localhost", None)
    assert not (router.apps_dir / "_dashboard.conf").exists()
    assert router.routed_apps() == ["hello"]


def test_unsafe_dashboard_values_never_reach_the_config(router: Router) -> None:
    with pytest.raises(PaasError, match="unsafe"):
        router.set_dashboard("paas.localhost; include /etc/passwd", "127.0.0.1:5000")
    assert not (router.apps_dir / "_dashboard.conf").exists()


def _count_nginx_t(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = subprocess.run

    def counting(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        if "-t" in args:
            calls.append(args)
        return real(args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("paas.router.nginx.subprocess.run", counting)
    return calls


def test_a_prechecked_route_is_installed_without_a_second_nginx_t(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    router.set_route(Route("other", ["other.localhost"], ["127.0.0.1:1"]))
    calls = _count_nginx_t(monkeypatch)
    route = Route("hello", ["hello.localhost"], ["127.0.0.1:2"])
    router.precheck_route(route)
    router.set_route(route)
    assert len(calls) == 1
    assert "127.0.0.1:2" in (router.apps_dir / "hello.conf").read_text()


def test_a_precheck_stands_for_nothing_once_another_route_changed(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    router.set_route(Route("first", ["first.localhost"], ["127.0.0.1:1"]))
    calls = _count_nginx_t(monkeypatch)
    route = Route("hello", ["hello.localhost"], ["127.0.0.1:2"])
    router.precheck_route(route)
    router.set_route(Route("other", ["other.localhost"], ["127.0.0.1:1"]))  # the candidate changed
    router.set_route(route)
    assert len(calls) == 3
    assert router.routed_apps() == ["first", "hello", "other"]


def test_a_precheck_that_nginx_rejects_installs_nothing(router: Router) -> None:
    bad = Route("bad", ["bad.localhost"], ["127.0.0.1:99999"])
    with pytest.raises(PaasError, match="nginx -t"):
        router.precheck_route(bad)
    with pytest.raises(PaasError, match="nginx -t"):
        router.set_route(bad)
    assert router.routed_apps() == []
