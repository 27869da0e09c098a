"""App names up to 63 characters (a DNS label; Dokku's own tests use 43): every name made from one
still fits where it goes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from paas.core import names, validation
from paas.core.routes import Route, RouteExtras
from paas.router.nginx import Router
from paas.settings import Settings

LONGEST = "a" + "b" * 61 + "c"  # 63
INSTANCE = "0123456789"


def test_the_longest_name_is_valid_and_one_more_is_not() -> None:
    assert validation.app_name(LONGEST) == LONGEST
    with pytest.raises(Exception, match="1-63 lowercase"):
        validation.app_name(LONGEST + "d")


def test_swarm_names_fit_and_stay_apart() -> None:
    other = LONGEST[:-1] + "d"  # the same first 62 characters
    made = {
        names.swarm_service(INSTANCE, app, ptype, 12, "abcdef")
        for app in (LONGEST, other)
        for ptype in ("web", "worker", "x" * 30)
    }
    made |= {names.app_overlay(INSTANCE, LONGEST), names.app_overlay(INSTANCE, other)}
    assert len(made) == 8 and all(len(n) <= names.SWARM_NAME_MAX for n in made), made
    # Names that fit are as before (running services and networks keep theirs).
    assert names.app_overlay(INSTANCE, "shop") == f"paas-{INSTANCE}-shop-overlay"
    assert names.swarm_service(INSTANCE, "shop", "web", 3, "abcdef") == f"paas-{INSTANCE}-shop-web-v3-abcdef"


def test_nginx_takes_the_longest_name_under_a_long_domain(tmp_path: Path) -> None:
    domain = "apps." + "d" * 60 + ".example.com"
    router = Router(Settings(data_dir=tmp_path, http_port=18080, http_bind="127.0.0.1", domain=domain))
    host = f"{LONGEST}.{domain}"
    extras = RouteExtras()
    extras.set_metrics_log(str(tmp_path / "metrics.log"))  # its variable and log format are named for the app
    route = Route(
        LONGEST, [host, f"www.{LONGEST}.example.com"], ["127.0.0.1:32768"], extras, {"127.0.0.1:32768": 3}
    )
    router.set_route(route)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-p", str(router.prefix), "-c", str(router.main_conf)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
