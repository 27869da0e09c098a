#!/bin/bash
# `make install`: run paas as a system service (systemd), started at boot, settings in
# /etc/paas/paas.env. `make uninstall` (this script with "uninstall") removes the units and keeps
# the data. Without systemd it says so and runs the server in the foreground, as `make up` does.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
UNIT_DIR=${PAAS_UNIT_DIR:-/etc/systemd/system}
ENV_FILE=/etc/paas/paas.env
say() { echo "-----> $*"; }

docker_unit() {
  if systemctl list-unit-files docker.service >/dev/null 2>&1 \
     && systemctl list-unit-files docker.service | grep -q '^docker.service'; then
    echo docker.service
  else
    echo paas-dockerd.service
  fi
}

render() {  # render <unit> <dest dir>
  sed -e "s|@REPO@|$REPO|g" -e "s|@DOCKER_UNIT@|$2|g" "scripts/systemd/$1"
}

has_systemd() { [ -d /run/systemd/system ]; }

if [ "${1:-}" = "render" ]; then  # render <dir> [docker unit]: the units as installed (for tests)
  dunit=${3:-$(docker_unit)}
  render paas.service "$dunit" > "$2/paas.service"
  render paas-dockerd.service "$dunit" > "$2/paas-dockerd.service"
  exit 0
fi

if [ "${1:-install}" = "uninstall" ]; then
  if has_systemd; then
    systemctl disable --now paas.service 2>/dev/null || true
  fi
  rm -f "$UNIT_DIR/paas.service" "$UNIT_DIR/paas-dockerd.service"
  has_systemd && systemctl daemon-reload
  # The router the server left running for the next start: no start is coming.
  .venv/bin/paas router:stop 2>/dev/null || true
  say "paas service removed; data kept in ${PAAS_DATA_DIR:-/var/lib/paas} and settings in $ENV_FILE"
  exit 0
fi

scripts/bootstrap.sh
mkdir -p /etc/paas
if [ ! -f "$ENV_FILE" ]; then
  umask 077
  cat > "$ENV_FILE" <<CONF
# Settings of the paas service (README: Settings). Restart with: systemctl restart paas
PAAS_DATA_DIR=${PAAS_DATA_DIR:-/var/lib/paas}
PAAS_BUILD_CA_BUNDLE=${PAAS_BUILD_CA_BUNDLE:-}
CONF
  say "Wrote $ENV_FILE"
fi
chmod 600 "$ENV_FILE"

if ! has_systemd; then
  say "systemd is not running here: no service installed; running the server in the foreground (as make up)"
  set -a; . "$ENV_FILE"; set +a
  exec .venv/bin/paas server
fi

dunit=$(docker_unit)
if [ "$dunit" = paas-dockerd.service ]; then
  render paas-dockerd.service "$dunit" > "$UNIT_DIR/paas-dockerd.service"
fi
render paas.service "$dunit" > "$UNIT_DIR/paas.service"
systemctl daemon-reload
systemctl enable --now "$dunit" >/dev/null
# A restart (not a start) on upgrades: the new code runs its store migrations at start, and the
# router keeps serving meanwhile (KillMode=process).
systemctl enable paas.service >/dev/null
systemctl restart paas.service
say "paas runs as a service: systemctl status paas, journalctl -u paas"
