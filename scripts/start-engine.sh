#!/bin/bash
# Start the Docker engine if it is installed and not running (bootstrap.sh and fresh-engine.sh).
# A machine that was switched off keeps /var/lib/docker: a stopped engine is not an empty one.
set -euo pipefail
DATA_DIR=${PAAS_DATA_DIR:-/var/lib/paas}
say() { echo "-----> $*"; }

docker info >/dev/null 2>&1 && exit 0
command -v dockerd >/dev/null || { echo "error: dockerd is not installed (apt-get install docker.io)" >&2; exit 1; }
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  say "Starting docker (systemd)"
  systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
  mkdir -p "$DATA_DIR"
  say "Starting dockerd (log: $DATA_DIR/dockerd.log)"
  nohup dockerd >>"$DATA_DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "error: dockerd did not start; see $DATA_DIR/dockerd.log" >&2; exit 1; }
fi
