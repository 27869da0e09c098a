"""Door 7: which custom domains an app may claim (services.domains.check_claim)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paas.core.context import Context
from paas.errors import Conflict
from paas.services.domains import check_claim
from paas.settings import Settings


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context.open(Settings(data_dir=tmp_path, domain="apps.example.com"), actor="host", is_admin=True)


@pytest.mark.parametrize(
    "host",
    [
        "apps.example.com",  # the apps' domain itself
        "*.apps.example.com",  # every app's default address
        "*.example.com",  # a parent's wildcard covers them too (nginx: any depth)
        "*.com",
        "victim.apps.example.com",  # another app's default name
        "x.victim.apps.example.com",  # ... and what lies under it
        "*.victim.apps.example.com",
        "paas.apps.example.com",  # the dashboard
        "login.paas.apps.example.com",  # could set cookies for it
    ],
)
def test_refused(ctx: Context, host: str) -> None:
    with pytest.raises(Conflict):
        check_claim(ctx, "mine", host)


@pytest.mark.parametrize(
    "host",
    [
        "www.example.com",
        "example.com",
        "mine.apps.example.com",
        "x.mine.apps.example.com",
        "*.mine.apps.example.com",
        "*.shop.example.com",
        "other.org",
    ],
)
def test_accepted(ctx: Context, host: str) -> None:
    check_claim(ctx, "mine", host)


def test_a_dashboard_host_of_its_own_is_fenced_too(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, domain="apps.example.com", dashboard_hostname="admin.example.net")
    c = Context.open(settings, actor="host", is_admin=True)
    for host in ("admin.example.net", "x.admin.example.net", "*.example.net", "*.admin.example.net"):
        with pytest.raises(Conflict):
            check_claim(c, "mine", host)
    check_claim(c, "mine", "www.example.net")
