"""Notifications without a server: a local HTTP receiver verifies each signature, one that is down
gets retries with backoff, every attempt is in the log, and private addresses are for admins."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paas import commands
from paas.core.context import Context
from paas.errors import PaasError
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())
from paas_plugins import notifications as hooks  # noqa: E402
from paas_plugins.notifications import service  # noqa: E402


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers `status`, keeps what came."""

    status: int = 204
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/paas?x=1"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = Context.open(Settings(data_dir=tmp_path / "data"), on_host=True, is_admin=True, actor="root")
    c.store.create_app("shop")
    return c


def _release(ctx: Context, version_desc: str = "Deploy abc1234"):  # type: ignore[no-untyped-def]
    app = ctx.store.get_app("shop")
    r = ctx.store.create_release(app.id, None, {}, {"web": 1}, version_desc, "alice")
    return app, r


def test_each_event_reaches_the_receiver_with_a_valid_signature(ctx: Context, receiver: Receiver) -> None:
    hook = service.add(ctx, "shop", receiver.url, None, slack=False)
    app, release = _release(ctx)
    hooks.paas_deploy_started(ctx, app, release)
    hooks.paas_post_deploy(ctx, app, release)
    hooks.paas_deploy_failed(ctx, app, None, "build of abc1234 failed: boom")
    hooks.paas_rolled_back(ctx, app, release, release, "v2 rolled back: 5xx 41% (312 of 760) vs 0.2% before")
    hooks.paas_process_trouble(ctx, app, "web.1", "crash-loop", "web.1 restarted 3 times in 5 minutes")
    hooks.paas_process_trouble(ctx, app, "web.1", "oom-killed", "web.1 passed its memory limit")
    hooks.paas_certificate_expiring(ctx, app, ["shop.example.com"], "2030-01-01T00:00:00+00:00", 9)
    hooks.paas_backup_failed(ctx, "postgres:db", "disk full")  # platform-wide: not this app's hook
    with ThreadPoolExecutor(2) as pool:
        assert service.send_due(ctx, pool) == 7
    verifier = Webhook(hook.secret)
    types = []
    for headers, body in receiver.got:
        event = verifier.verify(body, headers)  # raises unless id, timestamp and signature match
        types.append(event["type"])
        assert event["data"]["app"] == "shop" and event["data"]["summary"]
        assert headers["webhook-id"].startswith("msg_")
    assert sorted(types) == sorted(
        [
            "deploy.started",
            "deploy.succeeded",
            "deploy.failed",
            "release.rolled_back",
            "process.crash_loop",
            "process.oom_killed",
            "certificate.expiring",
        ]
    )
    rolled = next(json.loads(b) for _, b in receiver.got if b"rolled_back" in b)
    assert rolled["data"]["reason"].startswith("v2 rolled back: 5xx 41%") and rolled["data"]["automatic"]
    with pytest.raises(WebhookVerificationError):  # a forged body does not verify
        headers, body = receiver.got[0]
        verifier.verify(body.replace(b"shop", b"evil"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(service.new_secret()).verify(body, headers)


def test_a_receiver_that_is_down_gets_retries_with_backoff(ctx: Context, receiver: Receiver) -> None:
    service.add(ctx, "shop", receiver.url, "deploy.succeeded", slack=False)
    receiver.status = 503
    app, release = _release(ctx)
    (msg_id,) = service.notify(ctx, "shop", "deploy.succeeded", "shop v1 deployed", {"release": 1})
    service.notify(ctx, "shop", "deploy.started", "not asked for")  # filtered by --events
    t0 = 1_900_000_000.0
    with ThreadPoolExecutor(2) as pool:
        assert service.send_due(ctx, pool, now=t0) == 1
        assert service.send_due(ctx, pool, now=t0 + 1) == 0  # not due before the backoff
        d = service.store(ctx).delivery(msg_id)
        assert d is not None and d.state == "pending" and d.next_at == t0 + service.BACKOFF[0]
        receiver.stop()  # now nothing listens at all
        assert service.send_due(ctx, pool, now=t0 + service.BACKOFF[0]) == 1
        receiver.start()  # a new port: point the hook there, as an operator would re-add it
        with service.store(ctx).transaction() as c:
            c.execute("UPDATE hooks SET url = ?", (receiver.url,))
        receiver.status = 200
        assert service.send_due(ctx, pool, now=t0 + service.BACKOFF[0] + service.BACKOFF[1]) == 1
    d = service.store(ctx).delivery(msg_id)
    assert d is not None and (d.state, d.attempts, d.last_status) == ("delivered", 3, 200)
    tries = service.store(ctx).attempts(msg_id)
    assert [t["status"] for t in tries] == [503, None, 200]
    assert "Connection" in (tries[1]["error"] or "") or "refused" in (tries[1]["error"] or "").lower()
    ids = {h["webhook-id"] for h, _ in receiver.got}
    assert ids == {msg_id}  # the same id on every attempt: receivers deduplicate
    (entry,) = service.log(ctx, "shop")
    assert entry["state"] == "delivered" and len(entry["tries"]) == 3


def test_a_delivery_that_never_gets_through_is_failed_after_the_last_retry(ctx: Context) -> None:
    hook = service.store(ctx).add_hook(
        "shop", "http://127.0.0.1:9/", service.new_secret(), "*", "standard", "root", True, 0
    )
    service.store(ctx).enqueue("msg_x", hook, "deploy.started", "shop", "{}", 0)
    now = 0.0
    for _ in range(len(service.BACKOFF) + 1):
        d = service.attempt(ctx, "msg_x", now=now)
        now = d.next_at
    assert d.state == "failed" and d.attempts == len(service.BACKOFF) + 1


def test_slack_format_and_platform_wide_hooks(ctx: Context, receiver: Receiver) -> None:
    service.add(ctx, None, receiver.url, "backup.failed,node.down", slack=True)
    hooks.paas_backup_failed(ctx, "postgres:db", "disk full")
    hooks.paas_node_down(ctx, "node-2", "node-2 (10.0.0.2) is down")
    app, release = _release(ctx)
    hooks.paas_post_deploy(ctx, app, release)  # not one of its events
    with ThreadPoolExecutor(1) as pool:
        service.send_due(ctx, pool)
    texts = sorted(json.loads(b)["text"] for _, b in receiver.got)
    assert texts == [
        "scheduled backup of postgres:db failed: disk full",
        "swarm node node-2 (10.0.0.2) is down",
    ]


def test_test_sends_now_and_says_what_came_back(ctx: Context, receiver: Receiver) -> None:
    service.add(ctx, "shop", receiver.url, "deploy.failed", slack=False)
    (result,) = service.test(ctx, "shop", None)
    assert result["state"] == "delivered" and result["last_status"] == 204
    assert json.loads(receiver.got[0][1])["type"] == "test"


def test_rules_who_and_where(ctx: Context, receiver: Receiver) -> None:
    from paas.services import users

    users.add_user(ctx, "bob", None)
    bob = ctx.for_actor("bob", is_admin=False)
    with pytest.raises(PaasError, match="does not exist"):
        service.add(bob, "shop", "https://example.com/hook", None, False)
    ctx.store.create_app("bobs", owner_id=ctx.store.get_user("bob").id)
    with pytest.raises(PaasError, match="admin"):
        service.add(bob, None, "https://example.com/hook", None, False)
    # A tenant's webhook may not reach the server's own or private addresses (SSRF).
    for url in (
        receiver.url,
        "http://localhost:5000/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:2375/",
    ):
        with pytest.raises(PaasError, match="private or local"):
            service.add(bob, "bobs", url, None, False)
    for url in (
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "http://exa mple.com/",
        "javascript:alert(1)",
    ):
        with pytest.raises(PaasError):
            service.add(ctx, "shop", url, None, False)
    with pytest.raises(PaasError, match="unknown event"):
        service.add(ctx, "shop", receiver.url, "deploy.exploded", False)
    # An admin's may (an internal chat relay), and at each attempt the address is checked again.
    hook = service.add(ctx, "shop", receiver.url, None, False)
    with service.store(ctx).transaction() as c:
        c.execute("UPDATE hooks SET by_admin = 0 WHERE id = ?", (hook.id,))
    (result,) = service.test(ctx, "shop", hook.id)
    assert result["state"] == "pending" and "private or local" in result["last_error"]
    assert receiver.got == []


def test_the_commands_parse_and_refuse_in_one_line(ctx: Context, receiver: Receiver) -> None:
    import io

    def run(*argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        env = commands.CommandEnv(ctx, out, err, on_host=True)
        return commands.dispatch(list(argv), env), out.getvalue() + err.getvalue()

    code, text = run("notifications:add", "shop", receiver.url, "--events", "deploy.failed")
    assert code == 0 and "whsec_" in text
    code, text = run("notifications:list", "shop")
    assert code == 0 and receiver.url in text and "whsec_" not in text
    code, text = run("notifications:test", "shop")
    assert code == 0 and "delivered" in text
    code, text = run("notifications:log", "shop")
    assert code == 0 and "HTTP 204" in text
    code, text = run("notifications:list", "shop", "--all")
    assert code == 1 and text.startswith("error: name an app, or --all")
    code, text = run("notifications:remove", "shop", "1")
    assert code == 0 and run("notifications:list", "shop")[1].startswith("no webhooks")
    code, text = run("notifications:add", "--all")
    assert code == 1 and "Usage" in text and "Traceback" not in text
