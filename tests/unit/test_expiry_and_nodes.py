"""Where two notifications start: a certificate about to end (certs plugin) and a swarm node that
went down (the reconcile pass); each reaches plugins once, not on every pass."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from paas.core.context import Context
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())
from paas_plugins.certs import expiry, pem, service  # noqa: E402
from paas_plugins.swarm import nodes  # noqa: E402


@dataclass
class FakePlugins:
    calls: list[dict] = field(default_factory=list)

    def call_post(self, hook: str, **kwargs: object) -> None:
        self.calls.append({"hook": hook, **kwargs})


def _ctx(tmp_path: Path) -> Context:
    return Context.open(Settings(data_dir=tmp_path / "data"), on_host=True, is_admin=True, actor="root")


def test_a_certificate_ending_within_14_days_is_told_once_a_day(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ctx = _ctx(tmp_path)
    fake = FakePlugins()
    monkeypatch.setattr(Context, "plugins", property(lambda self: fake))
    app = ctx.store.create_app("shop")
    soon = pem.self_signed(["shop.localhost"], days=10)
    later = pem.self_signed(["later.localhost"], days=90)
    other = ctx.store.create_app("later")
    for a, pair in ((app, soon), (other, later)):
        s = service.app_subject(ctx, a)
        s.folder.mkdir(parents=True)
        s.cert_path.write_bytes(pair.cert_pem)
        s.key_path.write_bytes(pair.key_pem)
    # Noon today: "an hour later, the same day" must not cross midnight (this failed when the
    # suite ran after 23:00 UTC).
    now = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    assert expiry.check(ctx, now, force=True) == ["shop"]
    assert expiry.check(ctx, now + dt.timedelta(hours=1), force=True) == []  # the same day
    assert expiry.check(ctx, now + dt.timedelta(days=1), force=True) == ["shop"]
    assert expiry.check(ctx, now) == []  # at most one look an hour per server
    (call, _) = fake.calls
    assert call["hook"] == "paas_certificate_expiring" and call["app"].name == "shop"
    ends = service.current_info(service.app_subject(ctx, app)).not_after  # type: ignore[union-attr]
    assert call["hostnames"] == ["shop.localhost"] and call["days"] == (ends - now).days in (9, 10)
    assert [e["action"] for e in ctx.store.list_events(app="shop")].count("certs:expiring") == 2


def test_a_node_that_goes_down_is_told_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ctx = _ctx(tmp_path)
    fake = FakePlugins()
    monkeypatch.setattr(Context, "plugins", property(lambda self: fake))
    states = {"n1": True, "n2": True}

    def found(client):  # type: ignore[no-untyped-def]
        return {nid: SimpleNamespace(addr="10.0.0.9", hostname=nid, ready=up) for nid, up in states.items()}

    monkeypatch.setattr(nodes, "node_addresses", found)
    monkeypatch.setattr(Context, "docker", property(lambda self: None))
    nodes._ready.clear()
    assert nodes.watch_nodes(ctx) == []
    states["n2"] = False
    assert nodes.watch_nodes(ctx) == ["n2"]
    assert nodes.watch_nodes(ctx) == []  # still down: no news
    states["n2"] = True
    assert nodes.watch_nodes(ctx) == []
    states["n2"] = False
    assert nodes.watch_nodes(ctx) == ["n2"]  # down again: news again
    assert [c["hook"] for c in fake.calls] == ["paas_node_down", "paas_node_down"]
    assert [e["action"] for e in ctx.store.list_events()].count("nodes:down") == 2
