"""Backing services: create + link a Postgres with a warm image, and export/import of a 100 MB
database against pg_dump/pg_restore run directly in the same container, in one run.

Starts a `paas server` (loopback high ports, a temporary data dir), deploys a tiny app, builds
the postgres image once (not timed), then times:
- `postgres:create` + `postgres:link` over SSH (target <= 15 s);
- `postgres:export` over SSH into a local file vs `pg_dump -Fc` into a file inside the service
  container, and `postgres:import` over SSH vs `pg_restore` (same flags) from a file inside it
  (target: baseline / ours >= 0.8). The host CLI (`paas postgres:export`, no SSH) is shown too.
Not a test: it prints figures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from paas.settings import Settings  # noqa: E402
from tests.e2e.conftest import PAAS_BIN, PaasServer, running_server  # noqa: E402

ROWS = 800_000  # about 100 MB of table (pg_total_relation_size is printed)
RESTORE_FLAGS = "--clean --if-exists --no-owner --no-acl --single-transaction --exit-on-error"


def ok(result) -> str:  # type: ignore[no-untyped-def]
    if result.returncode != 0:
        raise SystemExit(f"failed: {result.output}")
    return result.stdout


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ssh(server: PaasServer, *args: str, stdin=None, stdout=None) -> None:  # type: ignore[no-untyped-def]
    cmd = ["ssh", "-F", str(server.ssh_config), "paas", *args]
    subprocess.run(cmd, stdin=stdin, stdout=stdout or subprocess.DEVNULL, check=True)


def in_container(container, script: str) -> None:  # type: ignore[no-untyped-def]
    code, out = container.exec_run(["sh", "-c", script])
    if code != 0:
        raise SystemExit(f"in the container: {out.decode()[-500:]}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        instance = Settings(data_dir=server.data_dir).instance_id
        client = docker.from_env()
        src = server.make_repo("stdlib-web", "bench-app")
        ok(server.git(src, "remote", "add", "paas", "paas:bench-app"))
        ok(server.git(src, "push", "paas", "main"))
        warm = time.perf_counter()
        ok(server.ssh("postgres:create", "warmup"))
        print(f"image ready and a first service in {time.perf_counter() - warm:.1f} s (not the figure)")
        ok(server.ssh("postgres:destroy", "warmup", "--confirm", "warmup", "--no-backup"))

        create = timed(lambda: ok(server.ssh("postgres:create", "bench")))
        link = timed(lambda: ok(server.ssh("postgres:link", "bench", "bench-app")))
        print(
            f"create + link (warm image): {create + link:.1f} s (create {create:.1f} s, link with a "
            f"zero-downtime restart {link:.1f} s); target <= 15 s"
        )

        db = client.containers.get(f"paas-{instance}-postgres-bench")
        psql = "psql -h /tmp -U postgres -d bench -X -q -v ON_ERROR_STOP=1"
        in_container(
            db,
            f'{psql} -c "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g*7)::text) || '
            f"repeat('x', 20) AS payload, now() AS at FROM generate_series(1, {ROWS}) g\"",
        )
        size = db.exec_run(["sh", "-c", f"{psql} -Atc \"select pg_total_relation_size('big')\""]).output
        print(f"database: {int(size) / 1e6:.0f} MB in table big ({ROWS} rows)")

        base_dump = timed(
            lambda: in_container(
                db, "pg_dump -h /tmp -U postgres -Fc bench > /var/lib/paas-service/base.dump"
            )
        )
        out = Path(tmp) / "bench.dump"
        with open(out, "wb") as fh:
            ours_dump = timed(lambda: ssh(server, "postgres:export", "bench", stdout=fh))
        with open(Path(tmp) / "host.dump", "wb") as fh:
            host_dump = timed(
                lambda: subprocess.run(
                    [PAAS_BIN, "postgres:export", "bench"], env=server.env, stdout=fh, check=True
                )
            )
        print(
            f"export: pg_dump in the container {base_dump:.2f} s, postgres:export over SSH {ours_dump:.2f} s "
            f"({out.stat().st_size / 1e6:.0f} MB), ratio {base_dump / ours_dump:.2f}x (target >= 0.8); "
            f"host CLI {host_dump:.2f} s, ratio {base_dump / host_dump:.2f}x"
        )

        ok(server.ssh("postgres:create", "copy"))
        copy = client.containers.get(f"paas-{instance}-postgres-copy")
        # The baseline restores the same dump from a file inside the target container.
        with open(out, "rb") as fh:
            data = fh.read()
        sock = copy.exec_run(["sh", "-c", "cat > /var/lib/paas-service/base.dump"], stdin=True, socket=True)
        raw = getattr(sock.output, "_sock", sock.output)
        raw.sendall(data)
        raw.shutdown(1)
        while raw.recv(65536):
            pass
        base_restore = timed(
            lambda: in_container(
                copy,
                f"pg_restore -h /tmp -U postgres -d copy {RESTORE_FLAGS} /var/lib/paas-service/base.dump",
            )
        )
        with open(out, "rb") as fh:
            ours_restore = timed(lambda: ssh(server, "postgres:import", "copy", stdin=fh))
        rows = copy.exec_run(["sh", "-c", "psql -h /tmp -U postgres -d copy -Atc 'select count(*) from big'"])
        assert int(rows.output) == ROWS, rows.output
        print(
            f"import: pg_restore in the container {base_restore:.2f} s, postgres:import over SSH "
            f"{ours_restore:.2f} s, ratio {base_restore / ours_restore:.2f}x (target >= 0.8)"
        )
        # The server's cleanup (after it stops) removes the containers and volumes of this instance.


if __name__ == "__main__":
    main()
