"""What a Postgres service is: Debian's postgresql on the stack, TLS on, one database per service.

The container runs as Debian's `postgres` user (the image's USER; it owns the data folder in the
volume) with every capability dropped. On a fresh volume the entrypoint runs initdb (local
connections trusted inside the container only, scram-sha-256 over TCP), makes a self-signed
certificate so `sslmode=require` works, and creates the database named after the service. The
generated password is set afterwards through psql's stdin (`setup`), never on a command line
or in the container's environment; until then nobody can log in over TCP.
"""

from __future__ import annotations

import docker
from docker.models.containers import Container

from paas.buildpacks.service_images import ServiceImageRecipe
from paas.plugin_api import PaasError

from . import containers as sc
from .service import Kind, Record

DATA = "/var/lib/paas-service"
SOCKET = "/tmp"
PORT = 5432

ENTRYPOINT = r"""#!/bin/sh
# paas: start Postgres on the service's volume; initialise it on first start.
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
export PATH="$BIN:$PATH"
PGDATA=/var/lib/paas-service/pgdata
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    INIT="$PGDATA.init"
    rm -rf "$INIT"
    initdb -D "$INIT" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    openssl req -new -x509 -days 3650 -nodes -subj "/CN=$(hostname)" \
        -keyout "$INIT/server.key" -out "$INIT/server.crt" 2>/dev/null
    chmod 600 "$INIT/server.key"
    cat >> "$INIT/postgresql.conf" <<EOF
listen_addresses = '*'
unix_socket_directories = '/tmp'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
password_encryption = 'scram-sha-256'
EOF
    echo "host all all all scram-sha-256" >> "$INIT/pg_hba.conf"
    # The initialising server listens on a socket of its own: a health check (on /tmp) that
    # reached it would pass just before it stops, and the password set next would fail.
    pg_ctl -D "$INIT" -o "-c listen_addresses='' -c unix_socket_directories='$INIT'" -w -s start
    createdb -h "$INIT" -U postgres "$PAAS_SERVICE"
    pg_ctl -D "$INIT" -m fast -w -s stop
    mv "$INIT" "$PGDATA"
fi
exec postgres -D "$PGDATA"
"""

RECIPE = ServiceImageRecipe(
    kind="postgres",
    packages=("postgresql", "openssl"),
    before=(
        "mkdir -p /etc/postgresql-common/createcluster.d"
        " && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/paas.conf"
    ),
    after=f"mkdir -p {DATA} && chown postgres:postgres {DATA} && chmod 700 {DATA}",
    files=(("/usr/local/bin/paas-postgres", 0o755, ENTRYPOINT),),
    user="postgres",
    entrypoint=("/usr/local/bin/paas-postgres",),
)


def url(record: Record) -> str:
    return f"postgres://postgres:{record.password}@{record.host}:{PORT}/{record.database}"


def _psql(record: Record, *args: str) -> list[str]:
    return [
        "psql",
        "-h",
        SOCKET,
        "-U",
        "postgres",
        "-d",
        record.database,
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        *args,
    ]


def health(client: docker.DockerClient, container: Container, record: Record) -> tuple[bool, str]:
    code, out, err = sc.exec_capture(client, container, _psql(record, "-Atc", "select 1"))
    return code == 0 and out.strip() == b"1", (err or out).decode(errors="replace").strip()[-200:]


def reachable(
    client: docker.DockerClient, container: Container, record: Record, address: str
) -> tuple[bool, str]:
    """Over TCP with TLS required and the password (scram), as a linked app connects."""
    conninfo = f"host={address} port={PORT} dbname={record.database} user=postgres sslmode=require"
    cmd = ["psql", conninfo, "-X", "-Atc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"]
    code, out, err = sc.exec_capture(client, container, cmd, env={"PGPASSWORD": record.password})
    return code == 0 and out.strip() == b"t", (err or out).decode(errors="replace").strip()[-200:]


def setup(client: docker.DockerClient, container: Container, record: Record) -> None:
    if not record.password.isalnum():  # generated hex: nothing to quote
        raise PaasError("the service's password is not alphanumeric")
    sql = f"ALTER ROLE postgres PASSWORD '{record.password}';\n".encode()
    code, out, err = sc.exec_capture(client, container, _psql(record), stdin=sql)
    if code != 0:
        raise PaasError(
            f"setting the postgres password failed: {(err or out).decode(errors='replace').strip()}"
        )


def export_cmd(record: Record) -> tuple[list[str], dict[str, str]]:
    return ["pg_dump", "-h", SOCKET, "-U", "postgres", "-Fc", "--no-owner", "--no-acl", record.database], {}


def snapshot_cmd(record: Record) -> tuple[list[str], dict[str, str]]:
    """For platform backups: the same custom format uncompressed (-Z0); restic compresses it and
    stores only the chunks that changed since the last snapshot."""
    cmd, env = export_cmd(record)
    return [*cmd[:-1], "-Z0", cmd[-1]], env


def import_cmd(record: Record) -> tuple[list[str], dict[str, str]]:
    """All or nothing: one transaction, stop at the first error (garbage changes nothing)."""
    return [
        "pg_restore",
        "-h",
        SOCKET,
        "-U",
        "postgres",
        "-d",
        record.database,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-acl",
        "--single-transaction",
        "--exit-on-error",
    ], {}


def connect_cmd(record: Record) -> tuple[list[str], dict[str, str]]:
    return ["psql", "-h", SOCKET, "-U", "postgres", "-d", record.database], {}


KIND = Kind(
    name="postgres",
    title="Postgres",
    env_var="DATABASE_URL",
    addons=("heroku-postgresql", "dokku-postgres"),
    recipe=RECIPE,
    data_path=DATA,
    url=url,
    health=health,
    setup=setup,
    export_cmd=export_cmd,
    import_cmd=import_cmd,
    connect_cmd=connect_cmd,
    backup_ext="dump",
    reachable=reachable,
    snapshot_cmd=snapshot_cmd,
)
