"""The backup plugin end to end, slow on purpose: a platform backed up, destroyed completely, and
restored onto a new server from nothing; a corrupted backup refused; an S3-compatible target
(moto's server on loopback); one app restored into a running platform."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from paas.settings import Settings
from tests.e2e.conftest import PaasServer, free_port, shutdown, unique_app, wait_for
from tests.e2e.test_https import CA, cert_tar, served_fingerprint, ssh_stdin
from tests.e2e.test_postgres import cleanup_services
from tests.e2e.test_redis import PING

FIXTURE = Path(__file__).resolve().parents[2] / "plugins" / "backup" / "fixtures" / "backup-app"
BUILD_CA = os.environ.get("PAAS_BUILD_CA_BUNDLE", "")


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def refused(result, text: str) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and text in lines[0], result.output
    return lines[0]


def ssh_in(server: PaasServer, data: str, *args: str) -> str:
    """A command with stdin (psql, redis-cli through *:connect)."""
    p = subprocess.run(
        ["ssh", "-F", str(server.ssh_config), "paas", *args],
        input=data,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def new_server(root: Path, key_file: Path) -> PaasServer:
    """A server with its own data dir and ports, in a folder nginx workers can search."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    server = PaasServer(root)
    server.env["PAAS_BACKUP_PASSWORD_FILE"] = str(key_file)
    return server


def push_app(server: PaasServer, name: str, greeting: str) -> Path:
    src = server.root / "src" / name
    shutil.copytree(FIXTURE, src)
    (src / "VERSION").write_text(greeting + "\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        ok(server.git(src, *args))
    ok(server.git(src, "remote", "add", "paas", f"paas:{name}"))
    ok(server.git(src, "push", "paas", "main"))
    return src


@pytest.fixture(scope="module")
def key_file() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="paas-backup-key-"))
    key = folder / "backup.key"
    key.write_text("a key the operator keeps off the machine\n")
    key.chmod(0o600)
    yield key
    shutil.rmtree(folder, ignore_errors=True)


def destroy_completely(server: PaasServer) -> None:
    """Server A is gone: its processes, containers, images, volumes, networks and data dir."""
    shutdown(server)
    cleanup_services(server)
    instance = Settings(data_dir=server.data_dir).instance_id
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"paas.instance={instance}"})
    assert not client.volumes.list(filters={"label": f"paas.instance={instance}"})
    for image in client.images.list(filters={"label": f"paas.instance={instance}"}):
        client.images.remove(image.id, force=True)
    shutil.rmtree(server.data_dir)


def fingerprint_db(server: PaasServer, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{server.data_dir / 'paas.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_platform_comes_back_on_a_new_server(tmp_path: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    a = new_server(tmp_path / "a", key_file)
    shop, blog, site = unique_app("shop"), unique_app("blog"), unique_app("site")
    db, cache = unique_app("db"), unique_app("cache")
    domain = f"www.{site}.example"
    ca = CA("backup test CA")
    cert, cert_key = ca.leaf([domain, f"{site}.localhost"])
    bob_key = tmp_path / "bob_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(bob_key)], check=True)
    b: PaasServer | None = None
    try:
        a.start_with_key("alice")
        # three apps: Postgres rows; a Redis key and a storage file; a certificate and a custom domain
        push_app(a, shop, "shop")
        push_app(a, blog, "blog")
        push_app(a, site, "site")
        ok(a.ssh("postgres:create", db))
        ok(a.ssh("postgres:link", db, shop))
        rows = "CREATE TABLE orders (id int, item text); INSERT INTO orders VALUES (1, 'tea'), (2, 'cake');\n"
        ssh_in(a, rows, "postgres:connect", db)
        ok(a.ssh("redis:create", cache))
        ok(a.ssh("redis:link", cache, blog))
        ssh_in(a, "SET visits 42\n", "redis:connect", cache)
        ok(a.ssh("storage:ensure-directory", f"{blog}-files"))
        ok(a.ssh("storage:mount", blog, f"{a.data_dir}/storage/{blog}-files:/app/storage"))
        (a.data_dir / "storage" / f"{blog}-files" / "note.txt").write_text("kept across servers\n")
        ok(a.ssh("config:set", shop, "'GREETING=welcome to the shop'"))
        ok(a.ssh("ps:scale", shop, "web=2"))
        ok(a.ssh("ps:restart", blog))  # the mount from now on
        ok(a.ssh("domains:add", site, domain))
        added = ssh_stdin(a, cert_tar(cert, cert_key), "certs:add", site)
        assert added.returncode == 0, added.stderr
        # two users with different permissions: bob sees only the shop
        ok(a.host("ssh-keys:add", "bob", f"{bob_key}.pub"))
        ok(a.ssh("access:add", shop, "bob", "--permissions", "view"))
        a.add_user("carol", "carol's long password", admin=True)
        token = a.token("carol")
        ok(a.ssh("backup:schedule", "'0 3 * * *'", "--keep", "7", "--to", str(target)))

        def observe(server: PaasServer) -> dict:
            return {
                "shop": server.get(f"{shop}.localhost"),
                "blog file": server.get(f"{blog}.localhost", "/file/note.txt"),
                "site": server.get(domain),
                "cert": served_fingerprint(server, domain),
                "rows": ssh_in(server, "SELECT * FROM orders ORDER BY id;\n", "postgres:connect", db).split(),
                "visits": ssh_in(server, "GET visits\n", "redis:connect", cache).strip(),
                "alice apps": json.loads(ok(server.ssh("apps:list", "--format", "json"))),
                "bob apps": ok(server.ssh("apps:list", key=bob_key)),
                "bob config": server.ssh("config:set", shop, "X=1", key=bob_key).returncode,
                "shop ps": re.findall(r"^(web\.\d+): running .* (v\d+) ", ok(server.ssh("ps", shop)), re.M),
                "api": api_apps(server, token),
                "cron": [
                    (r["id"], r["schedule"], r["command"])
                    for r in json.loads(ok(server.ssh("cron:list", site, "--format", "json")))
                ],
                "backup schedule": ok(server.ssh("backup:schedule")).splitlines()[0],
            }

        before = observe(a)
        assert before["shop"][0] == 200 and "welcome to the shop" in before["shop"][1]
        assert before["blog file"] == (200, "kept across servers\n")
        assert before["cert"] is not None and before["rows"] and before["visits"] == "42"
        assert before["bob config"] != 0 and shop in before["bob apps"] and blog not in before["bob apps"]
        assert before["cron"] and "Backups at '0 3 * * *'" in before["backup schedule"]
        password_hashes = fingerprint_db(a, "SELECT name, password_hash FROM users ORDER BY name")

        out = ok(a.host("backup:create", "--to", str(target)))
        assert "Backup " in out, out
        listed = ok(a.host("backup:list", "--from", str(target), "--format", "json"))
        backup_id = json.loads(listed)[0]["id"]
        ok(a.host("backup:verify", backup_id, "--from", str(target)))

        host_key = scan_host_key(a)
        destroy_completely(a)

        b = new_server(tmp_path / "b", key_file)
        b.start()  # from nothing: no key, no user, no app
        started = time.monotonic()
        restored = b.host("backup:restore", backup_id, "--from", str(target))
        took = time.monotonic() - started
        print(f"restore of 3 apps took {took:.1f} s\n{restored.output}")
        assert restored.returncode == 0, restored.output
        # the same keys, the same answers (a's client key now opens b)
        b.key, b.ssh_config = a.key, rewrite_config(a, b)
        after = wait_for(lambda: observe_ok(observe, b), timeout=60)
        after = observe(b)
        for key in before:
            if key != "api":
                assert after[key] == before[key], (key, before[key], after[key])
        assert after["api"] == before["api"]
        assert fingerprint_db(b, "SELECT name, password_hash FROM users ORDER BY name") == password_hashes
        # after a restart, b answers with a's SSH host key: the users' known_hosts still hold
        b.stop()
        b.start()
        assert scan_host_key(b) == host_key
        assert observe(b)["shop"] == before["shop"]
    finally:
        shutdown(a)
        cleanup_services(a)
        if b is not None:
            shutdown(b)
            cleanup_services(b)


def scan_host_key(server: PaasServer) -> list[str]:
    cmd = ["ssh-keyscan", "-t", "ed25519", "-p", str(server.ssh_port), "127.0.0.1"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.stdout.split()[1:3]


def observe_ok(observe, server: PaasServer) -> bool:  # type: ignore[no-untyped-def]
    try:
        return observe(server)["shop"][0] == 200
    except AssertionError:
        return False


def rewrite_config(a: PaasServer, b: PaasServer) -> Path:
    """b's ssh config with a's client key (the users keep their keys)."""
    path = b.root / "ssh_config_a_key"
    path.write_text(b.ssh_config.read_text().replace(str(b.key), str(a.key)))
    return path


def api_apps(server: PaasServer, token: str) -> list[str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        conn.request(
            "GET", "/api/v1/apps", headers={"Host": "paas.localhost", "Authorization": f"Bearer {token}"}
        )
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, body
        return sorted(a["name"] for a in json.loads(body))
    finally:
        conn.close()


@contextmanager
def moto_s3() -> Iterator[str]:
    """A local S3 (moto's server mode) on loopback: never the internet."""
    port = free_port()
    binary = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: port_open(port), timeout=30), "moto_server did not start"
        yield f"s3:http://127.0.0.1:{port}/paas-backups"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def corrupt(repo: Path) -> Path:
    """Flip bytes in the middle of the largest pack: the data restic reads back."""
    pack = max((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    pack.chmod(0o600)
    data = bytearray(pack.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    pack.write_bytes(bytes(data))
    return pack


def test_s3_target_one_app_restore_refusals_and_a_corrupted_backup(tmp_path: Path, key_file: Path) -> None:
    server = new_server(tmp_path / "s", key_file)
    server.env.update(AWS_ACCESS_KEY_ID="paas-test", AWS_SECRET_ACCESS_KEY="paas-test-secret")
    app, cache = unique_app("shop"), unique_app("cache")
    bob_key = tmp_path / "bob_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(bob_key)], check=True)
    try:
        with moto_s3() as s3:
            server.start_with_key("alice")
            push_app(server, app, "shop")
            ok(server.ssh("redis:create", cache))
            ok(server.ssh("redis:link", cache, app))
            ssh_in(server, "SET basket 3\n", "redis:connect", cache)
            ok(server.ssh("storage:ensure-directory", f"{app}-files"))
            ok(server.ssh("storage:mount", app, f"{server.data_dir}/storage/{app}-files:/app/storage"))
            (server.data_dir / "storage" / f"{app}-files" / "receipt.txt").write_text("paid\n")
            ok(server.ssh("ps:restart", app))
            ok(server.host("ssh-keys:add", "bob", f"{bob_key}.pub"))

            # admins only: bob's key is refused with one line, whatever he asks
            for args in (
                ["backup:list", "--from", s3],
                ["backup:create", "--to", s3],
                ["backup:restore", "latest", "--from", s3, "--app", app],
                ["backup:schedule", "off"],
            ):
                refused(server.ssh(*args, key=bob_key), "only an admin")

            first = ok(server.ssh("backup:create", "--to", s3))  # over SSH: progress streams back
            assert "Dumping the data of redis" in first and "Backup " in first, first
            (server.data_dir / "storage" / f"{app}-files" / "later.txt").write_text("after the backup\n")
            second = ok(server.ssh("backup:create", "--to", s3))
            assert "Backup " in second
            listed = json.loads(ok(server.ssh("backup:list", "--from", s3, "--format", "json")))
            assert len(listed) == 2
            backup_id = listed[1]["id"]  # the first one: without later.txt
            verified = ok(server.ssh("backup:verify", backup_id, "--from", s3))
            assert "is intact" in verified, verified

            # a platform with apps is not replaced unless told to
            refused(server.host("backup:restore", backup_id, "--from", s3), "this platform has 1 app")
            refused(server.host("backup:restore", backup_id, "--from", s3, "--app", app), "exists here")
            refused(server.host("backup:restore", "../x", "--from", s3), "invalid backup id")
            refused(server.host("backup:create", "--to", str(server.data_dir / "b")), "in the data dir")

            # one app (and its service and storage folder) into this running platform
            ok(server.ssh("apps:destroy", app, "--confirm", app))
            ok(server.ssh("redis:destroy", cache, "--confirm", cache, "--no-backup"))
            shutil.rmtree(server.data_dir / "storage" / f"{app}-files")
            assert server.get(f"{app}.localhost")[0] != 200
            restored = server.host("backup:restore", backup_id, "--from", s3, "--app", app)
            assert restored.returncode == 0, restored.output
            assert "ok      app " in restored.stdout, restored.stdout
            assert server.get(f"{app}.localhost") == (200, "hello\n")
            assert server.get(f"{app}.localhost", "/file/receipt.txt") == (200, "paid\n")
            assert server.get(f"{app}.localhost", "/file/later.txt")[0] == 404
            assert ssh_in(server, "GET basket\n", "redis:connect", cache).strip() == "3"
            assert f"{app}" in ok(server.ssh("apps:list"))
            events = ok(server.ssh("events", "-n", "50"))
            assert "backup:create" in events and "backup:restore" in events

            # the whole platform over this one (--force): its app destroyed first, and a service
            # made again meanwhile (another password) replaced by the backup's, which the app uses
            ok(server.ssh("redis:unlink", cache, app))
            ok(server.ssh("redis:destroy", cache, "--confirm", cache, "--no-backup"))
            ok(server.ssh("redis:create", cache))
            restored = server.host("backup:restore", backup_id, "--from", s3, "--force")
            assert restored.returncode == 0, restored.output
            assert f"ok      destroyed {app}: --force" in restored.stdout, restored.stdout
            assert server.get(f"{app}.localhost") == (200, "hello\n")
            assert ssh_in(server, "GET basket\n", "redis:connect", cache).strip() == "3"
            assert "PONG" in ok(server.ssh("run", app, PING)), "the app's REDIS_URL opens the service"

        # a corrupted backup is refused by verify and by restore, and nothing changes
        local = tmp_path / "local-backups"
        ok(server.host("backup:create", "--to", str(local)))
        good = json.loads(ok(server.host("backup:list", "--from", str(local), "--format", "json")))[0]["id"]
        ok(server.host("backup:verify", good, "--from", str(local)))
        corrupt(local)
        bad = server.host("backup:verify", good, "--from", str(local))
        assert bad.returncode != 0 and "Traceback" not in bad.output, bad.output
        assert "failed" in bad.stderr, bad.stderr
        apps_before = ok(server.ssh("apps:list"))
        bad = server.host("backup:restore", good, "--from", str(local), "--force", "--app", app)
        assert bad.returncode != 0 and "Traceback" not in bad.output, bad.output
        assert ok(server.ssh("apps:list")) == apps_before
        assert server.get(f"{app}.localhost") == (200, "hello\n")  # untouched
        assert "backup:verify-failed" in ok(server.ssh("events", "-n", "20"))

        # a wrong key opens nothing
        wrong = tmp_path / "wrong.key"
        wrong.write_text("not the key\n")
        wrong.chmod(0o600)
        server.env["PAAS_BACKUP_PASSWORD_FILE"] = str(wrong)
        refused(server.host("backup:list", "--from", str(local)), "the backup key does not open it")
    finally:
        shutdown(server)
        cleanup_services(server)


def test_scheduled_backups_run_prune_and_say_when_they_fail(tmp_path: Path, key_file: Path) -> None:
    server = new_server(tmp_path / "s", key_file)
    target = tmp_path / "scheduled"
    try:
        server.start_with_key("alice")
        refused(server.ssh("backup:schedule", "'61 * * * *'", "--to", str(target)), "invalid cron schedule")
        out = ok(server.ssh("backup:schedule", "'* * * * *'", "--keep", "1", "--to", str(target)))
        assert "Backups at '* * * * *'" in out, out

        def scheduled() -> list:
            listed = server.host("backup:list", "--from", str(target), "--format", "json")
            return json.loads(listed.stdout) if listed.returncode == 0 else []

        assert wait_for(lambda: len(scheduled()) >= 1, timeout=150, interval=3), server.log_path.read_text()[
            -2000:
        ]
        assert "scheduled" in scheduled()[0]["tags"]
        # the next tick fails: the key became readable by others
        key_file.chmod(0o644)
        try:
            failed = wait_for(lambda: "FAILED" in ok(server.ssh("backup:schedule")), timeout=150, interval=3)
            assert failed, ok(server.ssh("backup:schedule"))
            assert "readable by others" in ok(server.ssh("backup:schedule"))
            assert "backup:failed" in ok(server.ssh("events", "-n", "20"))
        finally:
            key_file.chmod(0o600)
        assert len(scheduled()) == 1  # --keep 1
        ok(server.ssh("backup:schedule", "off"))
        assert "no backup schedule" in ok(server.ssh("backup:schedule"))
    finally:
        shutdown(server)
