#!/bin/bash
# `make test` starts where a new user's machine starts: no image, container, volume, network or
# swarm of ours on the Docker engine, and no venv. Twice a cached artefact on the developers'
# machine (a git config, a stack image built before a change) hid a failure every new machine
# had; so every run builds the stack, the service images, the simulated hosts' image and the venv
# from nothing (the cost is in the README).
#
# Ours: a label whose key starts with `paas.`, a name that starts with `paas-`, an image whose
# repository is `paas/...` (or `<registry>/paas/...`). Other containers and images are left alone.
# PAAS_TEST_REUSE=1 skips all of it, for a developer re-running the suite on a warm machine; CI
# never sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "-----> $*"; }

if [ "${PAAS_TEST_REUSE:-}" = 1 ]; then
  say "PAAS_TEST_REUSE=1: keeping the engine's images and the venv (not what a new machine sees)"
  exit 0
fi

say "Removing the venv: the suite installs it as a new machine does"
rm -rf .venv

if ! command -v dockerd >/dev/null; then
  exit 0  # no engine yet: nothing of ours on it (bootstrap installs and starts one)
fi
# A stopped engine keeps its images on disk (CI starts on a machine where nothing runs, and once
# found the last run's stack there, never rebuilt): start it, then empty it.
scripts/start-engine.sh
started=$(date +%s)
ours() { grep -E '(^| )(paas-|[^ ]*paas/)|paas\.' || true; }

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != inactive ]; then
  docker swarm leave --force >/dev/null  # its services, tasks, configs and secrets go with it
fi
containers=$(docker ps -aq --no-trunc | while read -r id; do
  docker inspect --format '{{.ID}} {{.Name}} {{.Config.Image}} {{range $k, $v := .Config.Labels}}{{$k}} {{end}}' "$id"
done | sed 's# /# #' | ours | cut -d' ' -f1)
[ -z "$containers" ] || docker rm -f -v $containers >/dev/null
images=$( {
  # by name; one known only by its digest (a node's pull by digest: `<registry>/paas/...:<none>`,
  # left by an interrupted run) by its id
  docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep -E '(^|/)paas/' | while read -r ref id; do
    case "$ref" in *':<none>') echo "$id" ;; *) echo "$ref" ;; esac
  done || true
  docker images -q --no-trunc --filter dangling=true | while read -r id; do
    docker image inspect --format '{{.ID}} {{range $k, $v := .Config.Labels}}{{$k}} {{end}}' "$id"
  done | ours | cut -d' ' -f1
} | sort -u)
[ -z "$images" ] || docker rmi -f $images >/dev/null
volumes=$(docker volume ls -q | while read -r v; do
  docker volume inspect --format '{{.Name}} {{range $k, $v := .Labels}}{{$k}} {{end}}' "$v"
done | ours | cut -d' ' -f1)
[ -z "$volumes" ] || docker volume rm -f $volumes >/dev/null
networks=$(docker network ls -q --filter type=custom | while read -r n; do
  docker network inspect --format '{{.Name}} {{range $k, $v := .Labels}}{{$k}} {{end}}' "$n"
done | ours | cut -d' ' -f1)
[ -z "$networks" ] || docker network rm $networks >/dev/null
docker builder prune -af >/dev/null 2>&1 || true  # layers a Dockerfile build could reuse
# The engine's settings too: a new machine's dockerd runs without the two bootstrap adds to
# /etc/docker/daemon.json (other settings are kept), so bootstrap writes them and restarts it,
# which costs a few seconds on an engine this empty.
python3 - <<'PYEOF'
import json, os
path = "/etc/docker/daemon.json"
try:
    with open(path) as f:
        conf = json.load(f)
except (FileNotFoundError, ValueError):
    raise SystemExit(0)
ours = {"userland-proxy": False, "no-new-privileges": True}
rest = {k: v for k, v in conf.items() if not (k in ours and v == ours[k])}
if rest != conf:
    if rest:
        with open(path + ".paas-new", "w") as f:
            json.dump(rest, f, indent=2)
            f.write("\n")
        os.replace(path + ".paas-new", path)
    else:
        os.remove(path)
PYEOF
# Our iptables chains (the egress policy, the nodes' task-port guard): a new machine has none,
# and a chain left by an earlier run (a guarded node's address, now a container's) would differ.
if command -v iptables >/dev/null; then
  for parent in DOCKER-USER INPUT; do
    { iptables -w -S "$parent" 2>/dev/null || true; } | { grep -E -- '-j PAAS-[A-Z-]+$' || true; } | sed 's/^-A /-D /' \
      | while read -ra rule; do iptables -w "${rule[@]}" || true; done
  done
  for chain in PAAS-EGRESS PAAS-EGRESS-HOST PAAS-NODES; do
    { iptables -w -F "$chain" && iptables -w -X "$chain"; } 2>/dev/null || true
  done
fi
if command -v nft >/dev/null; then  # our nftables tables: the egress policy's (paas_egress_<pool>), the nodes' guard (paas_nodes)
  { nft list tables 2>/dev/null || true; } | { grep -E '^table ip paas_(egress_[0-9_]+|nodes)$' || true; } \
    | while read -r _ family table; do nft delete table "$family" "$table" || true; done
fi
left=$(docker images --format '{{.Repository}}' | grep -cE '(^|/)paas/' || true)
if [ "$left" != 0 ]; then
  echo "error: $left image(s) of ours are still on the engine" >&2
  exit 1
fi
say "Engine clean: $(echo "$containers" | grep -c . || true) container(s), $(echo "$images" | grep -c . || true) image(s), $(echo "$volumes" | grep -c . || true) volume(s), $(echo "$networks" | grep -c . || true) network(s) of ours removed in $(( $(date +%s) - started )) s"
