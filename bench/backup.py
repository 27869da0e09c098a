"""Platform backups: a first and a second (incremental) `backup:create` and a `backup:restore` onto
a new server, for 10 apps with about 100 MB of Postgres data, each beside the same work done by
hand in the same run (`pg_dump -Fc` of every database + `tar czf` of the data dir; restore:
`tar xzf` + `pg_restore` into every database).

Starts server A (loopback high ports, a temporary data dir), pushes 10 dependency-free apps,
creates 4 Postgres services of ~25 MB each linked to 4 of them, then times:
- backup:create (restic, encrypted, to a local folder) vs pg_dump + tar, and the bytes each adds;
- a second run after 1% more rows and a new commit: restic sends what changed, tar + pg_dump
  everything again;
- backup:restore on server B (new data dir, from nothing): fetch + verify, services' data back,
  10 apps rebuilt from their repos and deployed; vs tar xzf + pg_restore into B's databases
  (which rebuilds and deploys nothing).
Not a test: it prints figures. `--apps`, `--services`, `--rows` change the sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from paas.settings import Settings  # noqa: E402
from tests.e2e.conftest import PaasServer, shutdown  # noqa: E402

FIXTURE = ROOT / "plugins" / "backup" / "fixtures" / "backup-app"
PSQL = "psql -h /tmp -U postgres -X -q -v ON_ERROR_STOP=1"


def ok(result) -> str:  # type: ignore[no-untyped-def]
    if result.returncode != 0:
        raise SystemExit(f"failed: {result.output}")
    return result.stdout


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def in_container(container, script: str) -> bytes:  # type: ignore[no-untyped-def]
    code, out = container.exec_run(["sh", "-c", script])
    if code != 0:
        raise SystemExit(f"in the container: {out.decode()[-500:]}")
    return out


def server_at(root: Path, key: Path) -> PaasServer:
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    server = PaasServer(root)
    server.env["PAAS_BACKUP_PASSWORD_FILE"] = str(key)
    return server


def push(server: PaasServer, name: str, text: str) -> Path:
    src = server.root / "src" / name
    shutil.copytree(FIXTURE, src)
    (src / "VERSION").write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        ok(server.git(src, *args))
    ok(server.git(src, "remote", "add", "paas", f"paas:{name}"))
    ok(server.git(src, "push", "paas", "main"))
    return src


def by_hand_backup(server: PaasServer, dbs: list, out: Path) -> tuple[float, int]:
    """What an operator scripts: pg_dump of every database, then tar of the data dir."""
    out.mkdir(parents=True)
    start = time.perf_counter()
    for name, container in dbs:
        with open(out / f"{name}.dump", "wb") as fh:
            subprocess.run(
                ["docker", "exec", container.name, "pg_dump", "-h", "/tmp", "-U", "postgres", "-Fc", name],
                stdout=fh,
                check=True,
            )
    subprocess.run(["tar", "czf", str(out / "data.tar.gz"), "-C", str(server.data_dir), "."], check=True)
    return time.perf_counter() - start, du(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--services", type=int, default=4)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per database (~25 MB)")
    args = parser.parse_args()
    client = docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="paas-bench-backup-"))
    os.chmod(tmp, 0o755)
    key = tmp / "backup.key"
    key.write_text("bench key\n")
    key.chmod(0o600)
    target = tmp / "repo"
    a = server_at(tmp / "a", key)
    b = server_at(tmp / "b", key)
    try:
        a.start_with_key("alice")
        apps = [f"app{i:02d}" for i in range(args.apps)]
        start = time.perf_counter()
        sources = [push(a, app, f"{app}\n") for app in apps]
        print(f"{len(apps)} apps pushed in {time.perf_counter() - start:.1f} s")
        instance = Settings(data_dir=a.data_dir).instance_id
        dbs = []
        for i in range(args.services):
            name = f"db{i}"
            ok(a.ssh("postgres:create", name))
            ok(a.ssh("postgres:link", name, apps[i]))
            container = client.containers.get(f"paas-{instance}-postgres-{name}")
            in_container(
                container,
                f'{PSQL} -d {name} -c "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g*7)::text) '
                f"|| repeat('x', 20) AS payload, now() AS at FROM generate_series(1, {args.rows}) g\"",
            )
            dbs.append((name, container))
        size = sum(
            int(in_container(c, f"{PSQL} -d {n} -Atc \"select pg_database_size('{n}')\"")) for n, c in dbs
        )
        print(f"{len(dbs)} Postgres services, {mb(size)} of data in all")

        t1 = time.perf_counter()
        ok(a.host("backup:create", "--to", str(target)))
        ours1, size1 = time.perf_counter() - t1, du(target)
        hand1, hsize1 = by_hand_backup(a, dbs, tmp / "hand1")
        print(
            f"first backup: backup:create {ours1:.1f} s, {mb(size1)} in the repository | "
            f"pg_dump + tar {hand1:.1f} s, {mb(hsize1)} | time ratio {ours1 / hand1:.2f}x"
        )

        name, container = dbs[0]
        in_container(
            container,
            f'{PSQL} -d {name} -c "INSERT INTO big SELECT g, md5(g::text), now() '
            f'FROM generate_series({args.rows + 1}, {args.rows + args.rows // 100}) g"',
        )
        (sources[0] / "CHANGED").write_text("a second commit\n")
        for cmd in (["add", "-A"], ["commit", "-q", "-m", "second"], ["push", "-q", "paas", "main"]):
            ok(a.git(sources[0], *cmd))
        t2 = time.perf_counter()
        ok(a.host("backup:create", "--to", str(target)))
        ours2, added2 = time.perf_counter() - t2, du(target) - size1
        hand2, hsize2 = by_hand_backup(a, dbs, tmp / "hand2")
        print(
            f"second backup (1% more rows in one database, one commit): backup:create {ours2:.1f} s, "
            f"{mb(added2)} added | pg_dump + tar {hand2:.1f} s, {mb(hsize2)} again | "
            f"time ratio {ours2 / hand2:.2f}x, size ratio {added2 / hsize2:.3f}x"
        )
        backup_id = json.loads(ok(a.host("backup:list", "--from", str(target), "--format", "json")))[0]["id"]
        shutdown(a)

        b.start()
        t3 = time.perf_counter()
        report = json.loads(
            ok(b.host("backup:restore", backup_id, "--from", str(target), "--format", "json"))
        )
        ours3 = time.perf_counter() - t3
        failed = [o for o in report["outcomes"] if not o["ok"]]
        apps_time = sum(
            float(o["detail"].split(" in ")[-1].rstrip(" s"))
            for o in report["outcomes"]
            if o["part"].startswith("app ")
        )
        print(
            f"restore on server B: backup:restore {ours3:.1f} s ({len(failed)} part(s) failed; of it "
            f"{apps_time:.1f} s rebuilding and deploying {len(apps)} apps)"
        )
        b_instance = Settings(data_dir=b.data_dir).instance_id
        scratch = tmp / "untar"
        scratch.mkdir()
        t4 = time.perf_counter()
        subprocess.run(["tar", "xzf", str(tmp / "hand2" / "data.tar.gz"), "-C", str(scratch)], check=True)
        for name, _ in dbs:
            target_db = client.containers.get(f"paas-{b_instance}-postgres-{name}")
            with open(tmp / "hand2" / f"{name}.dump", "rb") as fh:
                subprocess.run(
                    ["docker", "exec", "-i", target_db.name, "pg_restore", "-h", "/tmp", "-U", "postgres",
                     "-d", name, "--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction"],
                    stdin=fh, check=True,
                )  # fmt: skip
        hand3 = time.perf_counter() - t4
        print(
            f"by hand: tar xzf + pg_restore {hand3:.1f} s (rebuilds and deploys nothing) | "
            f"ours without the app rebuilds {ours3 - apps_time:.1f} s, "
            f"ratio {(ours3 - apps_time) / hand3:.2f}x"
        )
        for n, _ in dbs:
            c = client.containers.get(f"paas-{b_instance}-postgres-{n}")
            rows = int(in_container(c, f'{PSQL} -d {n} -Atc "select count(*) from big"'))
            print(f"  {n} on B: {rows} rows")
        answered = sum(1 for app in apps if b.get(f"{app}.localhost")[0] == 200)
        print(f"apps answering on B: {answered}/{len(apps)}")
    finally:
        for server in (a, b):
            if server.proc is not None:
                shutdown(server)
            instance = Settings(data_dir=server.data_dir).instance_id
            for c in client.containers.list(all=True, filters={"label": f"paas.instance={instance}"}):
                c.remove(force=True)
            for v in client.volumes.list(filters={"label": f"paas.instance={instance}"}):
                v.remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
