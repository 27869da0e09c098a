"""Metrics and the post-deploy watch end to end: real router, real `paas server`, steady load."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import PaasServer, free_port, wait_for

pytestmark = pytest.mark.e2e


@dataclass
class Load:
    """Requests through the router at a steady pace, each on a new connection; what came back."""

    server: PaasServer
    host: str
    pace: float = 0.02
    seen: list[tuple[float, int, str]] = field(default_factory=list)  # (when, status, body); 0: failed
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.server.http_port, timeout=10)
                conn.request("GET", "/", headers={"Host": self.host})
                resp = conn.getresponse()
                self.seen.append((time.monotonic(), resp.status, resp.read().decode(errors="replace")))
                conn.close()
            except OSError as exc:
                self.seen.append((time.monotonic(), 0, repr(exc)))
            time.sleep(self.pace)

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=15)

    def failures(self) -> list[tuple[float, int, str]]:
        """What the app did not answer itself: connection errors and the router's own 5xx."""
        return [
            s
            for s in self.seen
            if not (s[1] == 200 and s[2].startswith("version "))
            and not (s[1] == 500 and "on purpose" in s[2])
        ]


class Receiver:
    """A webhook receiver on loopback that keeps every request (headers, body)."""

    def __init__(self) -> None:
        got: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                got.append(
                    (
                        {k.lower(): v for k, v in self.headers.items()},
                        self.rfile.read(int(self.headers["Content-Length"])),
                    )
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.got = got
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/paas"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, secret: str) -> list[dict]:
        """Every event received, each verified (a bad signature raises)."""
        return [Webhook(secret).verify(body, headers) for headers, body in list(self.got)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _add_hook(paas: PaasServer, app: str, url: str) -> str:
    added = paas.ssh("notifications:add", app, url, "--format", "json")
    assert added.returncode == 0, added.output
    return json.loads(added.stdout)["secret"]


def _commit(paas: PaasServer, src: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (src / name).write_text(text)
    assert paas.git(src, "add", "-A").returncode == 0
    assert paas.git(src, "commit", "-q", "-m", message).returncode == 0


def _metrics(paas: PaasServer, app: str) -> dict:
    result = paas.ssh("metrics", app, "--since", "1h", "--format", "json")
    assert result.returncode == 0, result.output
    return json.loads(result.stdout)


def test_a_release_answering_500_to_half_the_requests_is_rolled_back_under_load(paas: PaasServer) -> None:
    app, src = paas.deploy_new_repo("stdlib-web", "watched")
    host = f"{app}.localhost"
    watch = paas.ssh("checks:watch", app, "--window", "120", "--min-requests", "20")
    assert watch.returncode == 0 and "120 s after each deploy" in watch.stdout, watch.output
    receiver = Receiver()
    secret = _add_hook(paas, app, receiver.url)
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    _add_hook(paas, app, down)
    with Load(paas, host) as load:
        time.sleep(4)  # v1 serves: its requests are the baseline
        _commit(paas, src, {"VERSION": "2\n", "FAIL_EVERY": "2\n"}, "half of it fails")
        pushed = paas.git(src, "push", "paas", "main")
        assert pushed.returncode == 0, pushed.output
        assert "watching v2 for 120 s" in pushed.output

        def only_v1_again() -> bool:
            """v2 answered, then the last 30 answers all came from v1's build again."""
            bodies = [body for _, _, body in load.seen]
            return "failing on purpose 2\n" in bodies and all(b.startswith("version 1") for b in bodies[-30:])

        assert wait_for(only_v1_again, timeout=120, interval=0.5), paas.ssh("events", "--app", app).output
        settled = time.monotonic()
        time.sleep(3)  # the load goes on past the switch
    v2 = [t for t, _, body in load.seen if "purpose 2" in body or body.startswith("version 2")]
    served = v2[-1] - v2[0]  # from v2's first answer to its last: the watch's reaction
    assert served < 120, "not rolled back within the window"
    assert load.failures() == [], load.failures()[:5]
    assert all(body.startswith("version 1") for t, _, body in load.seen if t > settled)  # v2's are gone
    releases = paas.ssh("releases", app).stdout
    assert "Rollback to v1" in releases, releases
    events = paas.ssh("events", "--app", app).stdout
    assert "v2 rolled back: 5xx" in events, events
    data = _metrics(paas, app)
    by_release = {r["release"]: r for r in data["releases"]}
    assert by_release[2]["5xx"] >= 10 and by_release[2]["error_ratio"] >= 0.4, by_release
    assert by_release[1]["5xx"] == 0 and by_release[3]["requests"] > 0
    assert data["watch"]["state"] == "rolled-back" and data["watch"]["reason"].startswith(
        "v2 rolled back: 5xx"
    )
    text = paas.ssh("metrics", app).stdout
    assert "p95" in text and "v2:" in text and "rolled back" in text, text
    # The webhook got the deploy, and the rollback with its reason, each signed.
    try:

        def rolled_back_event() -> list[dict]:
            events = receiver.events(secret)
            return events if any(e["type"] == "release.rolled_back" for e in events) else []

        events = wait_for(rolled_back_event, timeout=15)
    finally:
        receiver.close()
    kinds = [(e["type"], e["data"].get("release")) for e in events]
    assert ("deploy.started", 2) in kinds and ("deploy.succeeded", 2) in kinds, kinds
    rolled = next(e for e in events if e["type"] == "release.rolled_back")
    assert rolled["data"]["reason"].startswith("v2 rolled back: 5xx") and rolled["data"]["to"] == 1
    assert rolled["data"]["by"] == "watch" and rolled["data"]["automatic"] is True

    # The receiver that is down gets retries (5 s, then 30 s apart), each in the delivery log.
    def retried() -> list[dict]:
        log = json.loads(paas.ssh("notifications:log", app, "--format", "json").stdout)
        mine = [d for d in log if d["state"] == "pending" and len(d["tries"]) >= 2]
        return mine

    pending = wait_for(retried, timeout=30, interval=1)
    assert pending, paas.ssh("notifications:log", app).output
    assert all(t["status"] is None and "Connection" in t["error"] for t in pending[0]["tries"])
    print(
        f"v2 served {served:.1f} s ({len(v2)} answers) before the rollback; {len(load.seen)} requests in all"
    )


def test_a_release_below_the_threshold_is_kept(paas: PaasServer) -> None:
    app, src = paas.deploy_new_repo("stdlib-web", "kept")
    assert paas.ssh("checks:watch", app, "--window", "30", "--min-requests", "20").returncode == 0
    with Load(paas, f"{app}.localhost") as load:
        time.sleep(3)
        _commit(paas, src, {"VERSION": "2\n", "FAIL_EVERY": "25\n"}, "4% fails")
        pushed = paas.git(src, "push", "paas", "main")
        assert pushed.returncode == 0, pushed.output

        def decided() -> dict | None:
            w = _metrics(paas, app)["watch"]
            return w if w and w["state"] != "watching" else None

        verdict = wait_for(decided, timeout=90, interval=2)
    assert verdict and verdict["state"] == "kept" and verdict["release"] == 2, verdict
    assert "Rollback" not in paas.ssh("releases", app).stdout
    assert load.failures() == []
    assert any(status == 500 for _, status, _ in load.seen)  # it did fail some: below the threshold
    assert paas.get(f"{app}.localhost")[1].startswith(("version 2", "failing on purpose 2"))
