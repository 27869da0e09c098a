"""The redis plugin end to end: a link answers PING at REDIS_URL from `run`; export -> import into
another service; the container's hardening; refused input changes nothing."""

from __future__ import annotations

import json
import subprocess

import docker
import pytest

from paas.settings import Settings
from tests.e2e.conftest import PaasServer, unique_app
from tests.e2e.test_postgres import cleanup_services

PING = (
    'python3 -c "import os, socket, urllib.parse\n'
    "u = urllib.parse.urlparse(os.environ['REDIS_URL'])\n"
    "s = socket.create_connection((u.hostname, u.port), 5)\n"
    "s.sendall(b'AUTH ' + u.password.encode() + b'\\r\\nPING\\r\\n')\n"
    "data = b''\n"
    "while data.count(b'\\r\\n') < 2:\n"
    "    data += s.recv(100)\n"
    'print(data.decode().split())"'
)


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def one_line_error(result, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr


def ssh_bytes(paas: PaasServer, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-F", str(paas.ssh_config), "paas", *args], input=stdin, capture_output=True, timeout=120
    )


def cli(paas: PaasServer, db: str, commands: str) -> str:
    p = ssh_bytes(paas, "redis:connect", db, stdin=commands.encode())
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


@pytest.fixture(scope="module")
def linked(paas: PaasServer):
    app, db = unique_app("rapp"), unique_app("cache")
    src = paas.make_repo("stdlib-web", app)
    ok(paas.git(src, "remote", "add", "paas", f"paas:{app}"))
    ok(paas.git(src, "push", "paas", "main"))
    ok(paas.ssh("redis:create", db))
    ok(paas.ssh("redis:link", db, app))
    yield {"app": app, "db": db}
    cleanup_services(paas)


def test_redis_link_answers_ping_from_run(paas: PaasServer, linked: dict) -> None:
    app, db = linked["app"], linked["db"]
    url = ok(paas.ssh("config:get", app, "REDIS_URL")).strip()
    assert url.startswith("redis://:") and url.endswith(f"@paas-redis-{db}:6379")
    assert ok(paas.ssh("run", app, PING)).strip() == "['+OK', '+PONG']"
    releases = json.loads(ok(paas.ssh("releases", app, "--format", "json")))
    assert max(releases, key=lambda r: r["version"])["description"] == "Set REDIS_URL"
    info = json.loads(ok(paas.ssh("redis:info", db, "--format", "json")))
    assert info["state"] == "running" and info["links"] == [{"app": app, "config_var": "REDIS_URL"}]
    c = docker.from_env().containers.get(info["container"])
    assert c.attrs["Config"]["User"] == "redis" and c.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert c.exec_run("grep CapEff /proc/1/status").output.decode().split() == ["CapEff:", "0000000000000000"]
    # Without the password the server refuses.
    out = c.exec_run("redis-cli PING").output.decode()
    assert "NOAUTH" in out


def test_a_renamed_app_keeps_its_link(paas: PaasServer, linked: dict) -> None:
    old, db = linked["app"], linked["db"]
    new = unique_app("renamed")
    ok(paas.ssh("apps:rename", old, new))
    linked["app"] = new
    info = json.loads(ok(paas.ssh("redis:info", db, "--format", "json")))
    assert info["links"] == [{"app": new, "config_var": "REDIS_URL"}]
    instance = Settings(data_dir=paas.data_dir).instance_id
    c = docker.from_env().containers.get(info["container"])
    assert set(c.attrs["NetworkSettings"]["Networks"]) == {f"paas-{instance}-{new}"}
    assert not docker.from_env().networks.list(names=[f"paas-{instance}-{old}"])
    assert ok(paas.ssh("run", new, PING)).strip() == "['+OK', '+PONG']"


def test_export_import_into_another_service(paas: PaasServer, linked: dict) -> None:
    db = linked["db"]
    assert "OK" in cli(paas, db, "SET greeting hello\n")
    dump = ssh_bytes(paas, "redis:export", db)
    assert dump.returncode == 0 and dump.stdout.startswith(b"REDIS"), dump.stderr
    other = unique_app("copy")
    ok(paas.ssh("redis:create", other))
    assert "OK" in cli(paas, other, "SET mine 1\n")
    garbage = ssh_bytes(paas, "redis:import", other, stdin=b"not an rdb file\n" * 50)
    assert garbage.returncode == 1 and b"not a valid Redis RDB dump" in garbage.stderr
    assert cli(paas, other, "GET mine\n").strip() == "1"  # nothing changed
    imported = ssh_bytes(paas, "redis:import", other, stdin=dump.stdout)
    assert imported.returncode == 0, imported.stderr
    assert cli(paas, other, "GET greeting\n").strip() == "hello"
    ok(paas.ssh("redis:destroy", other, "--confirm", other, "--no-backup"))


def test_backup_and_restore(paas: PaasServer, linked: dict) -> None:
    db = linked["db"]
    assert "OK" in cli(paas, db, "SET kept before\n")
    backup_id = ok(paas.ssh("redis:backup", db)).split()[0]
    assert backup_id.endswith(".rdb") and backup_id in ok(paas.ssh("redis:backups", db))
    assert "OK" in cli(paas, db, "SET kept after\n")
    ok(paas.ssh("redis:restore", db, backup_id))
    assert cli(paas, db, "GET kept\n").strip() == "before"
    assert ok(paas.ssh("run", linked["app"], PING)).strip() == "['+OK', '+PONG']"  # the link still answers


def test_refusals(paas: PaasServer, linked: dict) -> None:
    app, db = linked["app"], linked["db"]
    one_line_error(paas.ssh("redis:create", "UPPER"), "invalid redis service name")
    one_line_error(paas.ssh("redis:info", "missing"), "redis service 'missing' does not exist")
    one_line_error(paas.ssh("redis:destroy", db, "--confirm", db), f"is linked to {app}")
    ok(paas.ssh("redis:unlink", db, app))
    assert "REDIS_URL" not in json.loads(ok(paas.ssh("config", app, "--format", "json")))
    one_line_error(paas.ssh("redis:unlink", db, app), "is not linked")
    one_line_error(paas.ssh("redis:destroy", db), f"--confirm {db}")
    out = ok(paas.ssh("redis:destroy", db, "--confirm", db))
    assert "Kept a final backup" in out
    assert db not in ok(paas.ssh("redis:list"))
