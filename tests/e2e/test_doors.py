"""The front doors under attack: a real `paas server`, a real OpenSSH client, curl/HTTP through
the real nginx to the real gunicorn. Each test tries a way in (or around) that worked before."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest
import requests

from paas.core.context import Context
from paas.settings import Settings
from tests.e2e.conftest import PaasServer, shutdown, unique_app, wait_for


def _idle_flood(
    port: int, source: str, count: int, stop: threading.Event, rate: float
) -> list[socket.socket]:
    """TCP connections that never speak SSH, from `source`; then `rate` new ones a second."""
    held: list[socket.socket] = []

    def one() -> None:
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            held.append(s)
        except OSError:
            s.close()

    for _ in range(count):
        one()

    def keep_up() -> None:
        while not stop.wait(1 / rate):
            one()

    threading.Thread(target=keep_up, daemon=True).start()
    return held


@pytest.mark.alone  # a real client's login within 10 s under the flood: measured on a quiet machine
def test_idle_socket_flood_does_not_lock_out_a_real_client(own_server: PaasServer) -> None:
    """Before: 128 idle sockets (and ~9 new a second) locked every client out."""
    server = own_server
    stop = threading.Event()
    held = _idle_flood(server.ssh_port, "127.0.0.2", 300, stop, rate=20)
    try:
        time.sleep(1)
        for _ in range(3):
            started = time.monotonic()
            listed = server.ssh("apps:list", timeout=30)
            assert listed.returncode == 0, listed.output
            assert time.monotonic() - started < 10
        # Idle connections are cut after the 10 s login timeout.
        first = held[0]
        first.settimeout(20)
        started = time.monotonic()
        try:
            data = first.recv(4096)
            while data:  # the server's banner, then EOF
                data = first.recv(4096)
        except OSError:
            pass
        assert time.monotonic() - started < 15
    finally:
        stop.set()
        for s in held:
            s.close()


def _client(server: PaasServer) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        "127.0.0.1",
        server.ssh_port,
        username="paas",
        key_filename=str(server.key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def _follow(server: PaasServer, app: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ssh", "-F", str(server.ssh_config), "paas", "logs", "-t", app],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_after_login_channels_and_sessions_per_key_are_capped(own_server: PaasServer) -> None:
    server = own_server
    app = unique_app("caps")
    assert server.ssh("apps:create", app).returncode == 0
    # A second session channel on one connection is refused (only one command is served).
    client = _client(server)
    try:
        first = client.get_transport().open_session()  # type: ignore[union-attr]
        with pytest.raises(paramiko.ChannelException):
            client.get_transport().open_session()  # type: ignore[union-attr]
        first.close()
    finally:
        client.close()
    # Sixteen sessions of one key at once, not seventeen.
    followers = []
    try:
        for _ in range(16):  # one after another: logins at once from one address are capped too
            followers.append(_follow(server, app))
            time.sleep(0.4)
        time.sleep(2)
        ended = [p.communicate() for p in followers if p.poll() is not None]
        assert not ended
        extra = server.ssh("apps:list", timeout=30)
        assert extra.returncode != 0
        assert "too many sessions for key 'alice'" in extra.stderr
    finally:
        for p in followers:
            p.terminate()
            p.wait()
    assert wait_for(lambda: server.ssh("apps:list").returncode == 0, timeout=15)


def test_removing_a_key_ends_its_sessions(own_server: PaasServer) -> None:
    server = own_server
    app = unique_app("revoke")
    assert server.ssh("apps:create", app).returncode == 0
    follower = _follow(server, app)
    try:
        time.sleep(2)
        assert follower.poll() is None
        assert server.host("ssh-keys:remove", "alice").returncode == 0
        follower.wait(timeout=10)  # before: it kept following, with the key gone
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert server.ssh("apps:list").returncode != 0


def _last_pid() -> int:
    return int(Path("/proc/sys/kernel/ns_last_pid").read_text())


def test_window_changes_do_not_start_a_thread_each(own_server: PaasServer) -> None:
    """Before: each window-change message started a thread (3000 messages, 3000 threads; each
    takes a pid, which is how this counts them: they end too fast to be seen)."""
    server = own_server
    app = unique_app("winch")
    assert server.ssh("apps:create", app).returncode == 0
    client = _client(server)
    try:
        channel = client.get_transport().open_session()  # type: ignore[union-attr]
        channel.get_pty("xterm", 80, 24)
        channel.exec_command(f"logs -t {app}")
        time.sleep(1)
        before = _last_pid()
        for i in range(3000):
            channel.resize_pty(80 + i % 50, 24)
        time.sleep(1)
        used = (_last_pid() - before) % (1 << 22)
        assert used < 1000, used  # (other processes on the machine take some too)
        assert not channel.exit_status_ready()  # the session still runs
        channel.close()
    finally:
        client.close()


# The web doors, through the real nginx to the real gunicorns.
def _login(server: PaasServer, name: str, password: str, next_: str = "/") -> requests.Response:
    """POST /login through nginx as a browser does (CSRF token from the login page)."""
    web = requests.Session()
    base = f"http://127.0.0.1:{server.http_port}"
    host = {"Host": f"paas.localhost:{server.http_port}"}
    page = web.get(f"{base}/login", params={"next": next_}, headers=host, timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return web.post(
        f"{base}/login",
        data={"username": name, "password": password, "csrf_token": token, "next": next_},
        headers=host,
        allow_redirects=False,
        timeout=30,
    )


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d/evil.example",
        "//evil.example",
        "/\\evil.example",
        "/%5cevil.example",
        "https://evil.example/",
        "/%2f/evil.example",
        " //evil.example",
    ],
)
def test_login_never_redirects_to_another_host(paas: PaasServer, target: str) -> None:
    """Before: /%09/evil.com passed and came back as `Location: //evil.com`; /%0a/x was a 500."""
    if not getattr(paas, "_doors_user", False):
        paas.add_user("redir", "correct horse battery", admin=True)
        paas._doors_user = True  # type: ignore[attr-defined]
    resp = _login(paas, "redir", "correct horse battery", next_=requests.utils.unquote(target))
    assert resp.status_code == 303, resp.text
    location = resp.headers["Location"]
    assert location == "/", (target, location)


def test_a_control_character_in_a_login_name_is_never_stored_or_printed(paas: PaasServer) -> None:
    """Before: a failed login as "\\x1b]52;c;..." was stored and `events` printed it raw."""
    evil = "x\x1b]52;c;ZWNobyBwd25lZA==\x07\n2026-01-01T00:00:00Z  root  ssh-keys:add"
    for _ in range(6):  # five lock the name, which writes a `login:locked` event naming it
        assert _login(paas, evil, "whatever-password").status_code in (401, 429)
    shown = paas.ssh("events", "-n", "500")
    assert shown.returncode == 0, shown.output
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert not any(line.startswith("2026-01-01T00:00:00Z") for line in shown.stdout.splitlines())


def test_login_posts_are_rate_limited_by_nginx(own_server: PaasServer) -> None:
    server = own_server
    statuses = [_login(server, f"spray{i}", "Summer2026!").status_code for i in range(40)]
    assert 429 in statuses, statuses  # before: 40 names sprayed, 40 hashes, never a 429
    assert statuses[:10] == [401] * 10


def test_more_than_ten_logins_at_once_from_one_address_are_refused(own_server: PaasServer) -> None:
    """Before: any number of login POSTs from one address ran at once (an argon2 hash each).
    Ten held open (their bodies not sent yet) and the eleventh is refused by nginx."""
    server = own_server
    server.add_user("lena", "correct horse battery", admin=True)
    held = []
    try:
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
            s.sendall(
                b"POST /login HTTP/1.1\r\nHost: paas.localhost\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nuser"
            )
            held.append(s)
        time.sleep(0.5)  # nginx has read their headers
        refused = _login(server, "lena", "correct horse battery")
        assert refused.status_code == 429, (refused.status_code, refused.text[:200])
    finally:
        for s in held:
            s.close()
    assert wait_for(lambda: _login(server, "lena", "correct horse battery").status_code == 303, timeout=10)


def test_api_calls_without_a_well_formed_token_are_rate_limited_by_nginx(own_server: PaasServer) -> None:
    """Before: calls with no token (or not a `paas_...` one) were never counted anywhere. Now
    nginx limits them per address; well-formed wrong tokens are counted by the store (JSON 429)."""
    server = own_server
    server.add_user("tim", "correct horse battery", admin=True)
    token = server.token("tim")
    base = f"http://127.0.0.1:{server.http_port}/api/v1/apps"
    host = {"Host": "paas.localhost"}
    answers = [
        requests.get(base, headers={**host, "Authorization": auth}, timeout=10)
        for auth in ["", "Basic dGltOnB3", "Bearer not-ours"] * 12
    ]
    statuses = [r.status_code for r in answers]
    assert 429 in statuses and set(statuses) <= {401, 429}, statuses
    assert statuses[:20] == [401] * 20
    from_nginx = next(r for r in answers if r.status_code == 429)
    assert "rate_limited" not in from_nginx.text  # nginx's page: gunicorn never saw it
    # A good token from the same address is not held back by that ...
    assert (
        requests.get(base, headers={**host, "Authorization": f"Bearer {token}"}, timeout=10).status_code
        == 200
    )
    # ... and well-formed guesses are counted by the store, which then locks the address out.
    guesses = [
        requests.get(base, headers={**host, "Authorization": f"Bearer paas_guess{i}"}, timeout=10)
        for i in range(25)
    ]
    locked = guesses[-1]
    assert locked.status_code == 429 and locked.json()["id"] == "rate_limited", locked.text
    assert int(locked.headers["Retry-After"]) > 0


def test_unclaimed_names_under_the_apps_domain_are_not_captured_by_a_parent_wildcard(
    own_server: PaasServer,
) -> None:
    """PAAS_DOMAIN=localhost: *.localhost is refused; an app's parent-domain wildcard never
    serves a name under PAAS_DOMAIN that no app routes (the victim scaled to 0)."""
    server = own_server
    thief = unique_app("thief")
    assert server.ssh("apps:create", thief).returncode == 0
    for refused in (
        "*.localhost",
        "localhost",
        "x.victim.localhost",
        "*.victim.localhost",
        "paas.localhost",
        "a.paas.localhost",
    ):
        added = server.ssh("domains:add", thief, refused)
        assert added.returncode != 0, refused
    assert server.ssh("domains:add", thief, f"www.{thief}.localhost").returncode == 0
    status, body = server.get(f"victim.localhost:{server.http_port}")
    assert status == 404 and "no app is routed" in body


def _sse(server: PaasServer, path: str, token: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: paas.localhost\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    head = b""
    while b"retry: 2000" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return s


def test_a_hundred_open_log_streams_leave_the_dashboard_answering(own_server: PaasServer) -> None:
    """Before: 16 open streams (2 workers x 8 threads) hung every page."""
    server = own_server
    app = unique_app("streams")
    assert server.ssh("apps:create", app).returncode == 0
    server.add_user("watcher", "correct horse battery", admin=True)
    token = server.token("watcher")
    held = [_sse(server, f"/api/v1/apps/{app}/log-stream", token) for _ in range(100)]
    try:
        web = requests.Session()
        base = f"http://127.0.0.1:{server.http_port}"
        timings = []
        for _ in range(20):
            started = time.monotonic()
            listed = web.get(
                f"{base}/api/v1/apps",
                headers={"Host": "paas.localhost", "Authorization": f"Bearer {token}"},
                timeout=5,
            )
            assert listed.status_code == 200
            timings.append(time.monotonic() - started)
        assert app in [a["name"] for a in listed.json()]
        assert sorted(timings)[18] < 1.0, timings
        assert _login(server, "watcher", "correct horse battery").status_code == 303
        # The streams are all still open: each gets its keep-alive within the heartbeat.
        for s in held[:10]:
            s.settimeout(15)
            assert s.recv(4096)
    finally:
        for s in held:
            s.close()


def test_app_output_reaches_the_terminal_escaped(paas: PaasServer) -> None:
    """Before: `logs` printed an app's ESC sequences raw (an OSC 52 sets the reader's clipboard)."""
    app = unique_app("esc")
    src = paas.make_repo("tiny-worker", app)
    (src / "Procfile").write_text("worker: printf 'hi \\033]52;c;aGk=\\007 there\\n'; exec sleep 1000000\n")
    assert paas.git(src, "commit", "-qam", "print an escape").returncode == 0
    paas.git(src, "remote", "add", "paas", f"paas:{app}")
    pushed = paas.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output
    shown = wait_for(
        lambda: (r := paas.ssh("logs", app)).returncode == 0 and "there" in r.stdout and r.stdout
    )
    assert shown, paas.ssh("logs", app).output
    assert "\x1b" not in shown and "\x07" not in shown
    assert "hi \\x1b]52;c;aGk=\\x07 there" in shown
    assert paas.ssh("apps:destroy", app, "--confirm", app).returncode == 0


OSC52 = "\x1b]52;c;cHduZWQ=\x07"  # sets the reader's clipboard to "pwned"


def _terminal_safe(text: str) -> bool:
    return all(c.isprintable() or c in "\n\t" for c in text)


def test_build_release_and_config_output_reach_the_pusher_escaped(paas: PaasServer) -> None:
    """Before: a build's and a release phase's ESC sequences went to `git push` raw (`remote:`
    lines), and `config:get` printed a value's raw."""
    bp = paas.data_dir / "buildpacks" / "esc-printer"
    (bp / "bin").mkdir(parents=True, exist_ok=True)
    for name, body in (
        ("detect", "echo EscPrinter"),
        ("compile", "printf -- '-----> compiling \\033]52;c;cHduZWQ=\\007 \\033[2Jok\\r\\n'"),
        ("release", "echo '--- {}'"),
    ):
        (bp / "bin" / name).write_text(f"#!/bin/bash\n{body}\n")
        (bp / "bin" / name).chmod(0o755)
    app = unique_app("escpush")
    src = paas.make_repo("tiny-worker", app)
    (src / ".buildpacks").write_text(f"{bp}\n")
    (src / "Procfile").write_text(
        "release: printf 'release \\033]52;c;cmVs\\007 done\\n'\nworker: exec sleep 1000000\n"
    )
    assert paas.git(src, "add", "-A").returncode == 0
    assert paas.git(src, "commit", "-qm", "print escapes").returncode == 0
    paas.git(src, "remote", "add", "paas", f"paas:{app}")
    pushed = paas.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output
    assert "remote: -----> compiling \\x1b]52;c;cHduZWQ=\\x07 \\x1b[2Jok" in pushed.stderr, pushed.stderr
    assert "release \\x1b]52;c;cmVs\\x07 done" in pushed.stderr, pushed.stderr
    assert "\x1b" not in pushed.stderr and "\x07" not in pushed.stderr

    assert paas.ssh("config:set", app, f"EVIL=a{OSC52}b").returncode == 0
    for argv in (("config:get", app, "EVIL"), ("config", app), ("config:export", app), ("events",)):
        shown = paas.ssh(*argv)
        assert shown.returncode == 0, shown.output
        assert _terminal_safe(shown.stdout) and _terminal_safe(shown.stderr), argv
    assert paas.ssh("config:get", app, "EVIL").stdout == "a\\x1b]52;c;cHduZWQ=\\x07b\n"
    # The host CLI's output goes through the same writer.
    assert paas.host("config:get", app, "EVIL").stdout == "a\\x1b]52;c;cHduZWQ=\\x07b\n"
    assert paas.ssh("apps:destroy", app, "--confirm", app).returncode == 0


def test_a_parent_wildcard_never_captures_an_unrouted_app_name(tmp_path: Path) -> None:
    """PAAS_DOMAIN=apps.localhost, an app holding `*.localhost` (stored before this rule, which
    now refuses it): before, it served victim.apps.localhost while the victim had no route."""
    server = PaasServer(tmp_path)
    server.env["PAAS_DOMAIN"] = "apps.localhost"
    try:
        server.start_with_key()
        thief = unique_app("thief")
        src = server.make_repo("stdlib-web", thief)
        server.git(src, "remote", "add", "paas", f"paas:{thief}")
        pushed = server.git(src, "push", "paas", "main")
        assert pushed.returncode == 0, pushed.output
        assert server.ssh("domains:add", thief, "*.localhost").returncode != 0  # refused now
        ctx = Context.open(Settings(data_dir=server.data_dir, domain="apps.localhost"), actor="host")
        app_id = ctx.store.get_app(thief).id  # type: ignore[union-attr]
        ctx.store.replace_domains(app_id, ["*.localhost"])
        assert server.ssh("domains:add", thief, f"www.{thief}.example").returncode == 0  # re-renders
        assert server.get(f"shop.localhost:{server.http_port}")[0] == 200  # the wildcard works ...
        status, body = server.get(f"victim.apps.localhost:{server.http_port}")
        assert status == 404 and "no app is routed" in body, (status, body)  # ... but not in here
        assert server.get(f"apps.localhost:{server.http_port}")[0] == 404
        assert server.get(f"{thief}.apps.localhost:{server.http_port}")[0] == 200
    finally:
        shutdown(server)


def test_the_dashboard_on_a_host_of_its_own_with_a_host_only_cookie(tmp_path: Path) -> None:
    """PAAS_DASHBOARD_HOST moves the dashboard out of PAAS_DOMAIN (no app can toss cookies into
    it); no app may claim it; over HTTPS the session cookie is `__Host-` (curl, real login)."""
    server = PaasServer(tmp_path)
    server.env["PAAS_DASHBOARD_HOST"] = "admin.example.test"
    try:
        server.start_with_key()
        server.add_user("olga", "correct horse battery", admin=True)
        assert server.get(f"admin.example.test:{server.http_port}", "/login")[0] == 200
        assert server.get(f"paas.localhost:{server.http_port}", "/login")[0] == 404
        app = unique_app("claim")
        assert server.ssh("apps:create", app).returncode == 0
        for host in ("admin.example.test", "x.admin.example.test", "*.example.test"):
            assert server.ssh("domains:add", app, host).returncode != 0, host
        # Behind a TLS proxy on loopback (X-Forwarded-Proto: https), straight to gunicorn.
        jar = tmp_path / "jar"
        base = f"http://127.0.0.1:{server.web_port}"
        curl = ["curl", "-s", "-c", str(jar), "-b", str(jar), "-H", "X-Forwarded-Proto: https"]
        page = subprocess.run([*curl, f"{base}/login"], capture_output=True, text=True, check=True).stdout
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        login = subprocess.run(
            [
                *curl,
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-H",
                f"Referer: https://127.0.0.1:{server.web_port}/login",
                "--data-urlencode",
                "username=olga",
                "--data-urlencode",
                "password=correct horse battery",
                "--data-urlencode",
                f"csrf_token={token}",
                f"{base}/login",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert " 303" in login.splitlines()[0], login
        cookie = next(line for line in login.splitlines() if line.lower().startswith("set-cookie:"))
        assert "__Host-paas_session=" in cookie and "Secure" in cookie and "Path=/" in cookie
        assert "Domain" not in cookie
    finally:
        shutdown(server)


def _browser(server: PaasServer, name: str, password: str) -> requests.Session:
    """A logged-in browser session through nginx."""
    web = requests.Session()
    web.headers["Host"] = f"paas.localhost:{server.http_port}"
    base = f"http://127.0.0.1:{server.http_port}"
    page = web.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    login = web.post(
        f"{base}/login",
        data={"username": name, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    assert login.status_code == 303, login.text
    return web


def _job_state(page: str) -> str:
    found = re.search(r'id="job" data-state="(\w+)"', page)
    assert found, page
    return found.group(1)


def _job_events(web: requests.Session, base: str, job_path: str) -> str:
    """A job's output stream (through nginx, to the evented gunicorn) until its `done` event."""
    with web.get(f"{base}{job_path}/stream", stream=True, timeout=60) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        seen = ""
        for chunk in resp.iter_content(chunk_size=None, decode_unicode=True):
            seen += chunk
            if "event: done" in seen and seen.endswith("\n\n"):
                return seen
    raise AssertionError(seen)


@pytest.mark.alone  # page times during deploys: measured on a quiet machine
def test_deploys_from_the_dashboard_leave_its_pages_answering(tmp_path: Path) -> None:
    """Before: each restart posted from the dashboard held a gunicorn thread for its whole run,
    so with 2 threads two deploys hung every page. Now the form is answered at once with the
    job's page, whose output streams from the evented gunicorn."""
    server = PaasServer(tmp_path)
    server.env["PAAS_WEB_WORKERS"] = "1"
    server.env["PAAS_WEB_THREADS"] = "2"
    try:
        server.start_with_key()
        app = unique_app("slowboot")
        src = server.make_repo("stdlib-web", app)
        (src / "app.json").unlink()  # no health-check path: ready when it listens, after its boot
        (src / "BOOT_DELAY").write_text("3\n")
        assert server.git(src, "add", "-A").returncode == 0
        assert server.git(src, "commit", "-qm", "boot slowly").returncode == 0
        server.git(src, "remote", "add", "paas", f"paas:{app}")
        pushed = server.git(src, "push", "paas", "main")
        assert pushed.returncode == 0, pushed.output
        server.add_user("dora", "correct horse battery", admin=True)
        web = _browser(server, "dora", "correct horse battery")
        base = f"http://127.0.0.1:{server.http_port}"
        page = web.get(f"{base}/apps/{app}", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

        answers: list[tuple[float, requests.Response]] = []

        def restart() -> None:
            started = time.monotonic()
            resp = web.post(
                f"{base}/apps/{app}/restart", data={"csrf_token": token}, allow_redirects=False, timeout=60
            )
            answers.append((time.monotonic() - started, resp))

        posts = [threading.Thread(target=restart) for _ in range(4)]  # 4 deploys, 2 threads
        for t in posts:
            t.start()
        for t in posts:
            t.join()
        assert len(answers) == 4
        for took, resp in answers:
            assert resp.status_code == 303 and "/jobs/" in resp.headers["Location"], resp.text
            assert took < 2.0, [a[0] for a in answers]
        jobs = [resp.headers["Location"].split("?")[0] for _, resp in answers]
        # The deploys queue on the app's lock (about 3 s each); meanwhile every page answers.
        timings = []
        for _ in range(10):
            started = time.monotonic()
            assert web.get(f"{base}/", timeout=5).status_code == 200
            timings.append(time.monotonic() - started)
        states = [_job_state(web.get(f"{base}{j}", timeout=5).text) for j in jobs]
        assert {"queued", "running"} & set(states), states  # the deploys were still going on
        assert max(timings) < 1.0, timings
        # Each job's output comes live, then its outcome.
        for job in jobs:
            events = _job_events(web, base, job)
            assert "data:        starting web.1" in events, events
            assert '"state": "succeeded"' in events, events
        final = web.get(f"{base}{jobs[-1]}", timeout=5).text
        assert 'data-state="succeeded"' in final and f"Restarted {app}" in final

        # The API: a synchronous deploy may hold one of the two threads, not both ...
        api = requests.Session()
        api.headers.update({"Host": "paas.localhost", "Authorization": f"Bearer {server.token('dora')}"})
        waiting: list[requests.Response] = []
        first = threading.Thread(
            target=lambda: waiting.append(api.delete(f"{base}/api/v1/apps/{app}/dynos", timeout=60))
        )
        first.start()
        time.sleep(1.0)
        second = api.delete(f"{base}/api/v1/apps/{app}/dynos", timeout=60)
        assert second.status_code == 429 and second.json()["id"] == "rate_limited", second.text
        assert web.get(f"{base}/", timeout=5).status_code == 200
        first.join()
        assert waiting[0].status_code == 200, waiting[0].text
        # ... and one that asks for it answers at once with a job, followed through nginx.
        started = api.delete(
            f"{base}/api/v1/apps/{app}/dynos", headers={"Prefer": "respond-async"}, timeout=10
        )
        assert started.status_code == 202, started.text
        events = _job_events(api, base, started.headers["Location"])
        assert "data:        starting web.1" in events and '"state": "succeeded"' in events, events
    finally:
        shutdown(server)


def _banner(source: str, port: int) -> tuple[socket.socket, bool]:
    """A TCP connection from `source` to the server on `::1`-side loopback that never speaks SSH;
    whether the server sent its banner (admitted) or closed it at once (refused)."""
    s = socket.socket(socket.AF_INET6)
    s.bind((source, 0))
    s.settimeout(3)
    try:
        s.connect(("::1", port))  # a refused one may be reset before connect returns, on loopback
        return s, s.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return s, False


def test_twenty_addresses_of_one_ipv6_64_count_as_one_source(tmp_path: Path) -> None:
    """Before: each IPv6 address was its own source, so 13 addresses of one /64 (a single host's
    allocation) held every pre-auth slot; and a `::` bind did not listen at all."""
    net, other = "fd70:6161:7300:1::", "fd70:6161:7300:2::1"
    addresses = [f"{net}{i:x}" for i in range(1, 21)]
    for a in (*addresses, other):
        subprocess.run(["ip", "-6", "addr", "replace", f"{a}/128", "dev", "lo", "nodad"], check=True)
    server = PaasServer(tmp_path)
    server.env["PAAS_SSH_BIND"] = "::"  # both families on one socket
    held: list[socket.socket] = []
    try:
        server.start_with_key()
        admitted = 0
        for a in addresses:
            s, got_banner = _banner(a, server.ssh_port)
            held.append(s)
            admitted += got_banner
        assert admitted == 10, admitted  # throttle.PER_SOURCE for the whole /64
        s, got_banner = _banner(other, server.ssh_port)  # a neighbour in another /64 gets in
        held.append(s)
        assert got_banner
        listed = server.ssh("apps:list", timeout=30)  # and IPv4 clients (127.0.0.1) still do
        assert listed.returncode == 0, listed.output
    finally:
        for s in held:
            s.close()
        shutdown(server)
        for a in (*addresses, other):
            subprocess.run(["ip", "-6", "addr", "del", f"{a}/128", "dev", "lo"], check=False)
