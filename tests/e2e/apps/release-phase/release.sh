#!/bin/bash
# The release phase: fails when the app says so, like a migration that breaks.
echo "release phase of $DYNO: $(cat public/version.txt)"
if [ -f FAIL_RELEASE ]; then
  echo "migration failed" >&2
  exit 3
fi
