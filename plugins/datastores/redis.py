"""What a Redis service is: Debian's redis-server on the stack, RDB persistence on its volume.

The container runs as Debian's `redis` user (the image's USER, owner of the data folder) with
every capability dropped. The generated password is set through redis-cli's stdin and kept by
`CONFIG REWRITE` in the volume's redis.conf; clients in the container get it as REDISCLI_AUTH.
An import is checked with redis-check-rdb before anything changes, then replaces dump.rdb at the
next start (the entrypoint moves it in place) and the container restarts.
"""

from __future__ import annotations

import docker
from docker.models.containers import Container

from paas.buildpacks.service_images import ServiceImageRecipe
from paas.plugin_api import PaasError

from . import containers as sc
from .service import Kind, Record

DATA = "/var/lib/paas-service"
PORT = 6379

ENTRYPOINT = r"""#!/bin/sh
# paas: start Redis on the service's volume; an import waiting at import.rdb.ready goes in first.
set -eu
D=/var/lib/paas-service
if [ -f "$D/import.rdb.ready" ]; then
    mv "$D/import.rdb.ready" "$D/dump.rdb"
fi
if [ ! -f "$D/redis.conf" ]; then
    cat > "$D/redis.conf.tmp" <<EOF
bind * -::*
protected-mode no
port 6379
dir $D
dbfilename dump.rdb
save 3600 1 300 100 60 10000
appendonly no
EOF
    mv "$D/redis.conf.tmp" "$D/redis.conf"
fi
exec redis-server "$D/redis.conf"
"""

IMPORT = r"""set -eu
D=/var/lib/paas-service
rm -f "$D/import.rdb.tmp"
cat > "$D/import.rdb.tmp"
if ! redis-check-rdb "$D/import.rdb.tmp" >/tmp/check.log 2>&1; then
    rm -f "$D/import.rdb.tmp"
    echo "not a valid Redis RDB dump" >&2
    exit 1
fi
mv "$D/import.rdb.tmp" "$D/import.rdb.ready"
"""

EXPORT = r"""set -eu
redis-cli SAVE >/dev/null
cat /var/lib/paas-service/dump.rdb
"""

RECIPE = ServiceImageRecipe(
    kind="redis",
    packages=("redis-server", "redis-tools"),
    after=f"mkdir -p {DATA} && chown redis:redis {DATA} && chmod 700 {DATA}",
    files=(("/usr/local/bin/paas-redis", 0o755, ENTRYPOINT),),
    user="redis",
    entrypoint=("/usr/local/bin/paas-redis",),
)


def url(record: Record) -> str:
    return f"redis://:{record.password}@{record.host}:{PORT}"


def _auth(record: Record) -> dict[str, str]:
    return {"REDISCLI_AUTH": record.password}


def health(client: docker.DockerClient, container: Container, record: Record) -> tuple[bool, str]:
    code, out, err = sc.exec_capture(
        client, container, ["redis-cli", "--no-auth-warning"], stdin=_session(record, b"PING\n")
    )
    return code == 0 and b"PONG" in out, (err or out).decode(errors="replace").strip()[-200:]


def reachable(
    client: docker.DockerClient, container: Container, record: Record, address: str
) -> tuple[bool, str]:
    """Over TCP with the password, as a linked app connects."""
    cmd = ["redis-cli", "--no-auth-warning", "-h", address, "-p", str(PORT), "PING"]
    code, out, err = sc.exec_capture(client, container, cmd, env=_auth(record))
    return code == 0 and out.strip() == b"PONG", (err or out).decode(errors="replace").strip()[-200:]


def _session(record: Record, commands: bytes) -> bytes:
    return f"AUTH {record.password}\n".encode() + commands


def setup(client: docker.DockerClient, container: Container, record: Record) -> None:
    if not record.password.isalnum():
        raise PaasError("the service's password is not alphanumeric")
    cmds = f"CONFIG SET requirepass {record.password}\nCONFIG REWRITE\n".encode()
    code, out, err = sc.exec_capture(
        client, container, ["redis-cli", "--no-auth-warning"], stdin=_session(record, cmds)
    )
    if code != 0 or out.count(b"OK") < 2:
        raise PaasError(
            f"setting the redis password failed: {(err or out).decode(errors='replace').strip()[-200:]}"
        )


def export_cmd(record: Record) -> tuple[list[str], dict[str, str]]:
    return ["sh", "-c", EXPORT], _auth(record)


def import_cmd(record: Record) -> tuple[list[str], dict[str, str]]:
    return ["sh", "-c", IMPORT], {}


def after_import(client: docker.DockerClient, container: Container, record: Record) -> None:
    """Stop without saving (the running data must not overwrite the import), start on it."""
    sc.exec_capture(
        client, container, ["redis-cli", "--no-auth-warning"], stdin=_session(record, b"SHUTDOWN NOSAVE\n")
    )
    try:
        container.wait(timeout=30)
    except Exception:  # noqa: BLE001 - the restart below settles it either way
        pass
    container.restart(timeout=10)


def connect_cmd(record: Record) -> tuple[list[str], dict[str, str]]:
    return ["redis-cli", "--no-auth-warning"], _auth(record)


KIND = Kind(
    name="redis",
    title="Redis",
    env_var="REDIS_URL",
    addons=("heroku-redis", "dokku-redis"),
    recipe=RECIPE,
    data_path=DATA,
    url=url,
    health=health,
    setup=setup,
    export_cmd=export_cmd,
    import_cmd=import_cmd,
    connect_cmd=connect_cmd,
    backup_ext="rdb",
    after_import=after_import,
    reachable=reachable,
)
