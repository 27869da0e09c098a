#!/bin/bash
# The suite in two phases (`make test` runs this after bootstrap):
#   1. everything but the tests marked `alone`, on PAAS_TEST_WORKERS pytest-xdist workers (most
#      of a test's time is spent waiting on builds, boots and the network, not on the 2 cores);
#      each test file runs on one worker (its module fixtures start servers and pebble once),
#      and the Swarm files share one worker, one set of simulated hosts and one registry;
#   2. the tests marked `alone`, one after another with nothing beside them: those that restart
#      dockerd (it would stop every other test's containers) and those that measure time (a
#      bomb refused within 10 s, a neighbour's answers during a fork bomb, logins under a flood).
# Both phases run even if the first fails; the exit status says whether both passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15)
workers=${PAAS_TEST_WORKERS:-4}

started=$(date +%s)
"${PYTEST[@]}" -n "$workers" --dist loadgroup -m "not alone" tests
first=$?
echo "-----> phase 1 (${workers} workers): $(( $(date +%s) - started )) s"
second_started=$(date +%s)
"${PYTEST[@]}" -m alone tests
second=$?
echo "-----> phase 2 (alone): $(( $(date +%s) - second_started )) s; the suite: $(( $(date +%s) - started )) s"

# What a new machine builds, this run built: every image of ours is younger than the run (make
# test sets PAAS_TEST_STARTED before scripts/fresh-engine.sh emptied the engine).
echo "-----> images of ours on the engine:"
docker images --format '{{.CreatedAt}}|{{.Repository}}:{{.Tag}}|{{.Size}}' | { grep -E '\|([^|]*/)?paas/' || true; } | sort \
  | while IFS='|' read -r created ref size; do
      at=$(date -d "${created% [A-Z]*}" +%s)
      if [ -n "${PAAS_TEST_STARTED:-}" ] && [ "${PAAS_TEST_REUSE:-}" != 1 ] && [ "$at" -lt "$PAAS_TEST_STARTED" ]; then
        echo "error: $ref was built before this run started: the fresh start missed it" >&2
        exit 1
      fi
      echo "       $ref  $size  built $(( at - ${PAAS_TEST_STARTED:-$at} )) s into the run"
    done
images=$?
[ "$first" = 0 ] && [ "$second" = 0 ] && [ "$images" = 0 ]
