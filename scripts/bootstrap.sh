#!/bin/bash
# Idempotent setup shared by `make up` and `make test`: Debian packages, the venv with the
# package, a running dockerd, and the stack image. A second run with everything present is fast.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${PAAS_DATA_DIR:-/var/lib/paas}
PACKAGES=(docker.io nginx git debootstrap openssh-client openssh-server iptables nftables ca-certificates python3-venv chromium logrotate pebble openssl curl wrk restic)
say() { echo "-----> $*"; }

if [ "$(id -u)" != 0 ]; then
  echo "error: run as root (it installs packages and starts dockerd)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep package scripts from starting services: we run our own nginx and dockerd.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
# Debian's own nginx service would hold port 80; the PaaS runs its own nginx.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  say "Stopping the distribution's nginx service (paas manages its own)"
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  say "Creating .venv"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
  say "Installing paas into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

mkdir -p "$DATA_DIR"
# dockerd without its userland proxy (with it, a container asking its bridge's gateway for a
# published port is answered by docker-proxy, past the iptables rules that keep app code away
# from other apps' swarm tasks) and with no-new-privileges for every container (swarm tasks
# cannot ask for it themselves): plugins/swarm/scheduler/swarm_cluster.py. Other settings there are kept.
"$PY" - <<'PYEOF'
import json, os
path = "/etc/docker/daemon.json"
try:
    with open(path) as f:
        conf = json.load(f)
except FileNotFoundError:
    conf = {}
except ValueError as exc:
    raise SystemExit(f"error: {path} is not JSON ({exc}): fix it, then run this again")
wanted = {"userland-proxy": False, "no-new-privileges": True}
if any(conf.get(k) != v for k, v in wanted.items()):
    conf.update(wanted)
    os.makedirs("/etc/docker", exist_ok=True)
    with open(path + ".paas-new", "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    os.replace(path + ".paas-new", path)
    print("-----> Set \"userland-proxy\": false and \"no-new-privileges\": true in " + path)
PYEOF
# docker info shows neither setting: its proxy leaves skip-DNAT rules in nat's DOCKER chain, and
# a daemon.json newer than the running dockerd was not read.
dockerd_started() { date -d "$(ps -o lstart= -p "$(cat /var/run/docker.pid)")" +%s; }
if docker info >/dev/null 2>&1 && { iptables -t nat -S DOCKER 2>/dev/null | grep -q -- ' -j RETURN$' \
    || [ "$(stat -c %Y /etc/docker/daemon.json)" -gt "$(dockerd_started)" ]; }; then
  say "Restarting docker: it runs without the settings of /etc/docker/daemon.json"
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
    systemctl restart docker
  elif command -v systemctl >/dev/null && systemctl is-active --quiet paas-dockerd 2>/dev/null; then
    systemctl restart paas-dockerd  # make install's unit where docker.service is missing
  else
    pid=$(cat /var/run/docker.pid)
    kill "$pid"
    for _ in $(seq 1 180); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
  fi
fi
scripts/start-engine.sh

.venv/bin/paas stack:build
