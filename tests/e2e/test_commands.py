"""Every command of the SSH command layer, end to end over real OpenSSH against a real server."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import PaasServer, unique_app

TRICKY_VALUES = {
    "SHELLY": "; $(rm -rf /) `id` && echo pwned",
    "QUOTES": "it's \"quoted\" 'twice'",
    "EQUALS": "a=b=c==",
    "SPACES": "  leading and trailing  ",
    "UNICODE": "héllo wörld ✓ 日本",
}


@pytest.fixture(scope="module")
def app(paas: PaasServer) -> str:
    """A deployed web+worker app shared by this module's tests (they run in file order)."""
    name = unique_app("cmd")
    src = paas.make_repo("cmd-app", name)
    paas.git(src, "remote", "add", "paas", f"paas:{name}")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    return name


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def containers(app: str, ptype: str | None = None) -> list:
    labels = [f"paas.app={app}", "paas.role=process"] + ([f"paas.process_type={ptype}"] if ptype else [])
    return docker.from_env().containers.list(filters={"label": labels})


def test_config_values_round_trip_byte_for_byte(paas: PaasServer, app: str) -> None:
    host = f"{app}.localhost"
    pairs = [shlex.quote(f"{k}={v}") for k, v in TRICKY_VALUES.items()]
    out = ok(paas.ssh("config:set", app, *pairs))
    assert "Releasing v2" in out
    for key, value in TRICKY_VALUES.items():
        assert ok(paas.ssh("config:get", app, key)) == value + "\n"
        assert paas.get(host, f"/env/{key}") == (200, value)
    # Newlines (and anything else) through --encoded base64.
    multiline = "line one\nline two\n\tindented\n"
    encoded = base64.b64encode(multiline.encode()).decode()
    ok(paas.ssh("config:set", "--encoded", app, f"MULTI={encoded}"))
    assert paas.get(host, "/env/MULTI") == (200, multiline)
    assert json.loads(ok(paas.ssh("config", app, "--format", "json")))["MULTI"] == multiline
    # The host CLI sees the same store.
    assert paas.host("config:get", app, "SHELLY").stdout == TRICKY_VALUES["SHELLY"] + "\n"


def test_config_unset_and_no_restart(paas: PaasServer, app: str) -> None:
    host = f"{app}.localhost"
    before = len(json.loads(ok(paas.ssh("releases", app, "--format", "json"))))
    out = ok(paas.ssh("config:set", app, "LATER=1", "--no-restart"))
    assert "Not restarted" in out
    assert len(json.loads(ok(paas.ssh("releases", app, "--format", "json")))) == before
    assert paas.get(host, "/env/LATER")[0] == 404
    ok(paas.ssh("config:unset", app, "SPACES"))
    assert paas.get(host, "/env/SPACES")[0] == 404
    assert paas.get(host, "/env/LATER") == (200, "1")  # applied with the next release
    r = paas.ssh("config:unset", app, "NOPE")
    assert r.returncode == 1 and r.stderr.strip() == f"error: {app} has no config var NOPE"
    r = paas.ssh("config:set", app, "1BAD=x")
    assert r.returncode == 1 and "invalid config key" in r.stderr
    r = paas.ssh("config:set", app, "BIG=" + "x" * 70000)
    assert r.returncode == 1 and "config too large" in r.stderr


def test_a_config_that_fails_to_boot_is_refused_and_not_kept(paas: PaasServer, app: str) -> None:
    host = f"{app}.localhost"
    r = paas.ssh("config:set", app, "CRASH_ON_BOOT=1")
    assert r.returncode == 1
    assert "refusing to boot: CRASH_ON_BOOT=1" in r.output, r.output
    assert "CRASH_ON_BOOT" not in json.loads(ok(paas.ssh("config", app, "--format", "json")))
    assert paas.get(host)[0] == 200
    [latest, *_] = json.loads(ok(paas.ssh("releases", app, "--format", "json")))
    assert latest["status"] == "failed" and latest["description"] == "Set CRASH_ON_BOOT"


def test_scale_web_and_worker_and_the_router_spreads_requests(paas: PaasServer, app: str) -> None:
    host = f"{app}.localhost"
    out = ok(paas.ssh("apps:scale", app, "web=2", "worker=1"))
    assert "starting web.2" in out and "starting worker.1" in out
    procs = json.loads(ok(paas.ssh("ps", app, "--format", "json")))
    assert sorted(p["dyno"] for p in procs) == ["web.1", "web.2", "worker.1"]
    assert all(p["state"] == "running" for p in procs)
    [worker] = containers(app, "worker")
    assert worker.attrs["NetworkSettings"]["Ports"] == {}  # no port, no route
    seen = {paas.get(host)[1] for _ in range(20)}
    assert {line.split()[0] for line in seen} == {"web.1", "web.2"}
    assert len({line.split()[1] for line in seen}) == 2  # two different containers answered
    # ps:scale is the same command; the formation survives a restart.
    ok(paas.ssh("ps:scale", app, "worker=0"))
    assert containers(app, "worker") == []
    assert json.loads(ok(paas.ssh("apps:scale", app, "--format", "json"))) == {
        "greet": 0,
        "web": 2,
        "worker": 0,
    }
    for bad, message in (
        ("web=101", "invalid count"),
        ("db=1", "has no process type db"),
        ("web", "TYPE=COUNT"),
    ):
        r = paas.ssh("apps:scale", app, bad)
        assert r.returncode == 1 and message in r.stderr, r.output


def test_ps_restart_stop_start(paas: PaasServer, app: str) -> None:
    host = f"{app}.localhost"
    before = {c.id for c in containers(app)}
    ok(paas.ssh("ps:restart", app))
    after = {c.id for c in containers(app)}
    assert before and after and not (before & after)
    assert paas.get(host)[0] == 200
    web_before = {c.id for c in containers(app, "web")}
    ok(paas.ssh("ps:restart", app, "web"))
    assert not ({c.id for c in containers(app, "web")} & web_before)
    ok(paas.ssh("ps:stop", app))
    assert containers(app) == []
    assert paas.get(host)[0] == 404
    assert "Stopped:     yes" in ok(paas.ssh("apps:info", app))
    ok(paas.ssh("ps:start", app))
    assert paas.get(host)[0] == 200
    assert len(containers(app, "web")) == 2
    report = ok(paas.ssh("ps:report", app))
    assert f"=====> {app} ps information" in report  # Dokku's report, a line per process
    assert re.search(r"status web 1:\s+running", report) and re.search(r"status web 2:\s+running", report)


def test_releases_info_and_rollback(paas: PaasServer, app: str) -> None:
    host = f"{app}.localhost"
    releases = json.loads(ok(paas.ssh("releases", app, "--format", "json")))
    assert releases[0]["status"] == "current"
    assert releases[-1]["description"].startswith("Deploy ") and releases[-1]["user"] == "alice"
    text = ok(paas.ssh("releases", app))
    assert "Set SHELLY, QUOTES, EQUALS, SPACES, UNICODE" in text and "Scale web=2 worker=1" in text
    failed = next(r for r in releases if r["status"] == "failed")
    r = paas.ssh("releases:rollback", app, f"v{failed['version']}")
    assert r.returncode == 1 and "only a good release can be rolled back to" in r.stderr
    # Roll back to v1: no config vars but its GIT_REV (Dokku's rev-env-var), and the config table follows.
    out = ok(paas.ssh("releases:rollback", app, "v1"))
    assert "Rollback to v1" in out
    assert paas.get(host, "/env/SHELLY")[0] == 404
    config = json.loads(ok(paas.ssh("config", app, "--format", "json")))
    assert list(config) == ["GIT_REV"] and len(config["GIT_REV"]) == 40
    info = json.loads(ok(paas.ssh("releases:info", app, releases[0]["version"] and "v1", "--format", "json")))
    assert info["version"] == 1 and info["commit"]
    # Default target: the previous good release (the one before the rollback).
    ok(paas.ssh("releases:rollback", app))
    assert paas.get(host, "/env/SHELLY") == (200, TRICKY_VALUES["SHELLY"])
    assert len(containers(app, "web")) == 2  # the formation stays


def test_logs_recent_filtered_and_followed(paas: PaasServer, app: str) -> None:
    host = f"{app}.localhost"
    ok(paas.ssh("apps:scale", app, "worker=1"))
    time.sleep(1.5)
    lines = ok(paas.ssh("logs", app, "-n", "200")).splitlines()
    assert any(" app[worker.1]: worker tick" in ln for ln in lines)
    assert all(ln[:4].isdigit() and "+00:00 app[" in ln for ln in lines)
    web_only = ok(paas.ssh("logs", app, "-p", "web", "-n", "50")).splitlines()
    assert web_only and all("app[web." in ln for ln in web_only)
    assert len(ok(paas.ssh("logs", app, "-n", "3")).splitlines()) == 3
    # -t follows: a request made after it starts shows up, then the client hangs up.
    proc = subprocess.Popen(
        ["ssh", "-F", str(paas.ssh_config), "paas", "logs", app, "-t", "-p", "web", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        paas.get(host, "/?marker")
        deadline = time.monotonic() + 15
        seen = ""
        os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
        while time.monotonic() < deadline and "GET /?marker" not in seen:
            select.select([proc.stdout], [], [], 0.5)
            seen += proc.stdout.read() or ""  # type: ignore[union-attr]
        assert "GET /?marker" in seen
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ok(paas.ssh("apps:scale", app, "worker=0"))


def test_build_output_is_kept(paas: PaasServer, app: str) -> None:
    out = ok(paas.ssh("builds:output", app))
    assert "-----> Python app detected" in out and "Installing requirements with pip" in out
    assert ok(paas.ssh("builds:output", app, "v1")) == out
    r = paas.ssh("builds:output", app, "v999")
    assert r.returncode == 1 and "has no release v999" in r.stderr


def test_run_streams_output_and_exit_status(paas: PaasServer, app: str) -> None:
    r = paas.ssh("run", app, "echo out; echo err >&2; echo $DYNO; exit 7")
    assert r.returncode == 7
    assert r.stdout.splitlines()[0] == "out" and r.stdout.splitlines()[1].startswith("run.")
    assert r.stderr.strip() == "err"
    assert paas.ssh("run", app, "greet").stdout.startswith("hello from the Procfile run.")
    r = paas.ssh("run", app, "printf", "%s", shlex.quote(TRICKY_VALUES["SHELLY"]))
    assert r.stdout == TRICKY_VALUES["SHELLY"]
    p = subprocess.run(
        ["ssh", "-F", str(paas.ssh_config), "paas", "run", app, "cat"],
        input=b"piped in\n",
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 0 and p.stdout == b"piped in\n"
    assert (
        docker.from_env().containers.list(all=True, filters={"label": [f"paas.app={app}", "paas.role=run"]})
        == []
    )


def _pty_ssh(paas: PaasServer, *args: str, cols: int = 100, rows: int = 30):  # type: ignore[no-untyped-def]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        ["ssh", "-t", "-F", str(paas.ssh_config), "paas", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    return proc, master


def _read_until(master: int, needle: bytes, timeout: float = 60) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                buf += os.read(master, 4096)
            except OSError:
                break
    return buf


def test_run_interactive_with_a_pty(paas: PaasServer, app: str) -> None:
    proc, master = _pty_ssh(
        paas,
        "run",
        app,
        "stty size; python3 -c \"n = input('name? '); print('hi', n.upper())\"; "
        "read -p 'resize? ' x; stty size; sleep 60",
    )
    try:
        assert b"30 100" in _read_until(master, b"name? ")
        os.write(master, b"bob\r")
        assert b"hi BOB" in _read_until(master, b"resize? ")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.killpg(proc.pid, signal.SIGWINCH)
        time.sleep(0.5)
        os.write(master, b"\r")
        assert b"40 120" in _read_until(master, b"40 120")
        os.write(master, b"\x03")  # Ctrl-C reaches the process
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_domains(paas: PaasServer, app: str) -> None:
    domain = f"www.{app}.example.com"
    out = ok(paas.ssh("domains:add", app, domain, f"*.{app}.example.org"))
    assert domain in out and f"{app}.localhost (default)" in out
    assert paas.get(domain)[0] == 200
    assert paas.get(f"api.{app}.example.org")[0] == 200
    other = unique_app("other")
    ok(paas.ssh("apps:create", other))
    r = paas.ssh("domains:add", other, domain)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {domain} already belongs to app {app}"
    for bad in ("bad_domain.com", "a..b", "foo.*.com", "-x.com", "x" * 64 + ".com", "exa mple.com"):
        r = paas.ssh("domains:add", app, "--", shlex.quote(bad))
        assert r.returncode == 1 and "invalid domain" in r.stderr, bad
    assert json.loads(ok(paas.ssh("domains", app, "--format", "json"))) == sorted(
        [domain, f"*.{app}.example.org"]
    )
    ok(paas.ssh("domains:remove", app, domain))
    assert paas.get(domain)[0] == 404
    ok(paas.ssh("domains:set", app, f"shop.{app}.example.com"))
    assert paas.get(f"shop.{app}.example.com")[0] == 200
    ok(paas.ssh("domains:clear", app))
    assert paas.get(f"shop.{app}.example.com")[0] == 404
    assert paas.get(f"{app}.localhost")[0] == 200


def test_events_record_who_did_what(paas: PaasServer, app: str) -> None:
    events = json.loads(ok(paas.ssh("events", "--app", app, "-n", "200", "--format", "json")))
    actions = [e["action"] for e in events]
    for action in ("apps:create", "config", "ps:scale", "releases:rollback", "domains:add", "run", "ps:stop"):
        assert action in actions, action
    assert {e["user"] for e in events} == {"alice"}
    assert len(ok(paas.ssh("events", "-n", "3")).splitlines()) == 3


def test_apps_info_rename_and_destroy(paas: PaasServer, app: str) -> None:
    info = json.loads(ok(paas.ssh("apps:info", app, "--format", "json")))
    assert set(info) >= {"name", "url", "release", "formation", "processes", "domains", "commit"}
    assert info["processes"] == {"web.1": "running", "web.2": "running"}
    new = unique_app("renamed")
    ok(paas.ssh("apps:rename", app, new))
    assert paas.get(f"{new}.localhost")[0] == 200
    assert paas.get(f"{app}.localhost")[0] == 404
    assert containers(app) == [] and len(containers(new, "web")) == 2
    r = paas.ssh("apps:destroy", new)
    assert r.returncode == 1 and f"--confirm {new}" in r.stderr
    ok(paas.ssh("apps:destroy", new, "--confirm", new))
    assert containers(new) == []
    assert paas.get(f"{new}.localhost")[0] == 404
    assert not (paas.data_dir / "repos" / f"{new}.git").exists()
    assert new not in ok(paas.ssh("apps:list"))
    assert paas.ssh("apps:info", new).returncode == 1


def test_errors_are_one_line_with_a_usage_hint(paas: PaasServer) -> None:
    for argv, expected in (
        (["config:get"], "error: Missing argument 'APP'."),
        (["config", "no-such-app"], "error: app 'no-such-app' does not exist"),
        (["releases:info", "x", "vX"], "error: app 'x' does not exist"),
        (["logs", "x", "-n", "abc"], "error: Invalid value for '-n'"),
    ):
        r = paas.ssh(*argv)
        assert r.returncode == 1, argv
        assert r.stderr.startswith(expected), r.stderr
        assert "Traceback" not in r.output


def test_help_lists_every_command(paas: PaasServer) -> None:
    out = ok(paas.ssh("help"))
    for name in (
        "apps:scale",
        "config:set",
        "releases:rollback",
        "logs",
        "run",
        "domains:add",
        "events",
        "ps",
    ):
        assert f"  {name} " in out, name
    assert "config:set" in ok(paas.ssh("config:help")) and "apps:list" not in ok(paas.ssh("config:help"))


def test_ps_set_stop_timeout(paas: PaasServer) -> None:
    name = unique_app("timeout")
    ok(paas.ssh("apps:create", name))
    assert (
        ok(paas.ssh("ps:set", name, "stop-timeout-seconds", "7"))
        == "-----> Setting stop-timeout-seconds to 7\n"
    )
    assert ok(paas.ssh("ps:report", name, "--ps-computed-stop-timeout-seconds")) == "7\n"
    r = paas.ssh("ps:set", name, "stop-timeout-seconds", "abc")
    assert r.returncode == 1 and "whole number of seconds" in r.stderr
    assert ok(paas.ssh("ps:set", name, "stop-timeout-seconds")) == "-----> Unsetting stop-timeout-seconds\n"
    assert ok(paas.ssh("ps:report", name, "--ps-computed-stop-timeout-seconds")) == "5\n"  # the default


def test_ssh_keys_over_ssh_and_on_the_host(paas: PaasServer, tmp_path: Path) -> None:
    bob = tmp_path / "bob"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(bob)], check=True)
    r = paas.host("ssh-keys:add", "bob", "-", input=(tmp_path / "bob.pub").read_text())
    assert r.returncode == 0 and "Added key bob:" in r.stdout and "(admin)" not in r.stdout
    keys = json.loads(ok(paas.ssh("ssh-keys:list", "--format", "json")))
    assert {k["name"]: k["admin"] for k in keys}.items() >= {"alice": True, "bob": False}.items()
    assert ok(paas.ssh("apps:list", key=bob))
    assert paas.host("ssh-keys:remove", "bob").returncode == 0
    r = paas.ssh("apps:list", key=bob)
    assert r.returncode == 255 and "Permission denied" in r.stderr


def test_host_cli_runs_the_same_commands(paas: PaasServer, tmp_path: Path) -> None:
    r = paas.host("apps:list", "--format", "json")
    assert r.returncode == 0 and isinstance(json.loads(r.stdout), list)
    r = paas.host("nope")
    assert r.returncode == 1 and r.stderr.strip() == "error: unknown command 'nope'; run 'help' for the list"
