"""Every container we create has docker's log caps (issue 27): without them a one-off printing
without end (`run:detached app yes`) fills the disk through dockerd's json-file log."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from paas.buildpacks import isolation
from paas.core.container import LOG_OPTIONS, ContainerSettings, log_config
from paas.scheduler import host_containers
from paas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CREATES = {("containers", "create"), ("containers", "run"), ("services", "create")}
# What a call may carry its caps in: the caps themselves, or a dict built with them nearby
# (service_containers.create), or the two helpers whose results the tests below check.
MARKERS = ("log_config", "log_driver_options", "**kwargs", "engine_kwargs(", "build_hardening(")


def _calls(path: Path) -> list[tuple[int, str]]:
    text = path.read_text()
    out = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        if (name, node.func.attr) in CREATES:
            out.append((node.lineno, ast.get_source_segment(text, node) or ""))
    return out


def test_every_container_and_service_we_create_passes_log_caps() -> None:
    found, bare = 0, []
    for path in [*(ROOT / "paas").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        for line, segment in _calls(path):
            found += 1
            if not any(m in segment for m in MARKERS):
                bare.append(f"{path.relative_to(ROOT)}:{line}")
    assert found >= 12 and bare == [], bare


def test_the_app_container_settings_carry_the_caps() -> None:
    client = SimpleNamespace(images=SimpleNamespace(get=lambda image: SimpleNamespace(attrs={"Config": {}})))
    kwargs = host_containers.engine_kwargs(client, "img", ContainerSettings(), {}, {}, "run")  # type: ignore[arg-type]
    assert kwargs["log_config"] == {"type": "json-file", "config": LOG_OPTIONS}
    assert log_config()["config"] == {"max-size": "10m", "max-file": "3"}


def test_build_containers_carry_the_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation.networks, "ensure", lambda *a, **k: "paas-build-net")
    kwargs = isolation.build_hardening(None, Settings(data_dir=tmp_path), "shop")  # type: ignore[arg-type]
    assert kwargs["log_config"] == {"type": "json-file", "config": LOG_OPTIONS}


def test_nginx_caps_streams_per_address_as_the_stream_server_does() -> None:
    from paas.services import throttle

    for name in ("dashboard.conf.j2", "dashboard_tls.conf.j2"):
        text = (ROOT / "paas" / "router" / "templates" / name).read_text()
        assert f"limit_conn paas_streams {throttle.MAX_STREAMS_PER_ADDRESS};" in text
    assert throttle.MAX_STREAMS_PER_USER < throttle.MAX_STREAMS_PER_ADDRESS < 1000  # room for others
