#!/usr/bin/env bash
# The helper Dokku's black-box .bats files `load`, written for paas (tests/dokku/run.py puts it
# beside them). Same function names and meaning as Dokku's, minus what would harm a shared host:
# global_setup removes no containers, and a failed test does not skip the rest of its file.

TEST_APP="rdmtestapp-$(tr -dc 'a-z0-9' </dev/urandom | head -c 32)"
DOKKU_DOMAIN="${DOKKU_DOMAIN:-dokku.me}"
DOKKU_ROOT="${DOKKU_ROOT:-/nonexistent-dokku-root}"

global_setup() { :; }
global_teardown() { :; }
install_pack() { :; }

flunk() {
  if [[ "$#" -eq 0 ]]; then cat -; else echo "$*"; fi
  return 1
}

assert_success() {
  if [[ "$status" -ne 0 ]]; then
    flunk "command failed with exit status $status"
  elif [[ "$#" -gt 0 ]]; then
    assert_output "$1"
  fi
}

assert_failure() {
  if [[ "$status" -eq 0 ]]; then
    flunk "expected failed exit status"
  elif [[ "$#" -gt 0 ]]; then
    assert_output "$1"
  fi
}

assert_equal() {
  if [[ "$1" != "$2" ]]; then
    printf 'expected: %s\nactual:   %s\n' "$1" "$2" | flunk
  fi
}

assert_output() {
  local expected
  if [[ $# -eq 0 ]]; then expected="$(cat -)"; else expected="$1"; fi
  assert_equal "$expected" "$output"
}

assert_not_output() {
  [[ "$output" != "$1" ]] || flunk "expected output other than: $1"
}

assert_output_exists() {
  [[ -n "$output" ]] || flunk "expected output, found none"
}

assert_output_not_exists() {
  [[ -z "$output" ]] || flunk "expected no output, found some"
}

# Counts the occurrences of $1 in the output; $2 (default 1) is how many there must be.
assert_output_contains() {
  local rest="$output" expected="$1" want="${2:-1}" found=0
  while [[ "$rest" == *"$expected"* ]]; do
    rest="${rest#*"$expected"}"
    found=$((found + 1))
  done
  assert_equal "$want" "$found"
}

assert_line() {
  local line
  if [[ "$1" -ge 0 ]] 2>/dev/null; then
    assert_equal "$2" "${lines[$1]}"
    return
  fi
  for line in "${lines[@]}"; do
    [[ "$line" == "$1" ]] && return 0
  done
  flunk "expected line \`$1'"
}

refute_line() {
  local line
  if [[ "$1" -ge 0 ]] 2>/dev/null; then
    [[ "$1" -lt "${#lines[@]}" ]] && flunk "output has ${#lines[@]} lines"
    return 0
  fi
  for line in "${lines[@]}"; do
    [[ "$line" == "$1" ]] && flunk "expected to not find line \`$line'"
  done
  return 0
}

assert() {
  "$@" || flunk "failed: $*"
}

assert_exit_status() {
  assert_equal "$status" "$1"
}

create_app() {
  dokku apps:create "${1:-$TEST_APP}"
}

destroy_app() {
  local rc="${1:-0}"
  dokku --force apps:destroy "${2:-$TEST_APP}"
  return "$rc"
}

# deploy_app [type] [remote] [template function] [path]: copy tests/apps/<type>, let the template
# function change it, commit it and push it to the app as Dokku's tests do.
deploy_app() {
  local app_type="${1:-python}" remote="${2:-dokku@${DOKKU_DOMAIN}:$TEST_APP}" template="$3" path="$4"
  local branch="${GIT_REMOTE_BRANCH:-master}"
  local tmp="${CUSTOM_TMP:-$(mktemp -d "/tmp/dokku.me.XXXXX")}"
  rmdir "$tmp" && cp -r "${BATS_TEST_DIRNAME}/../../tests/apps/$app_type" "$tmp"
  # shellcheck disable=SC2086
  [[ -n "$template" ]] && $template "$TEST_APP" "$tmp/$path"
  pushd "$tmp" &>/dev/null || return 1
  git init -q -b master
  git config user.email "robot@example.com"
  git config user.name "Test Robot"
  git remote add target "$remote"
  [[ -f gitignore ]] && mv gitignore .gitignore
  git add .
  git commit -q -m 'initial commit'
  local rc=0
  git push target "master:${branch}" || rc=$?
  popd &>/dev/null || true
  [[ -z "$CUSTOM_TMP" ]] && rm -rf "$tmp"
  return "$rc"
}

check_urls() {
  run /bin/bash -c "dokku --quiet urls $TEST_APP | grep -E \"${1}\""
  assert_success
}

assert_url() {
  run /bin/bash -c "dokku url $TEST_APP"
  assert_output "$1"
}

assert_urls() {
  run /bin/bash -c "dokku urls $TEST_APP"
  assert_output < <(tr ' ' '\n' <<<"$*" | sort)
}

assert_http_success() {
  run curl -kSso /dev/null -w "%{http_code}" "$1"
  assert_output "200"
}

add_domain() {
  dokku domains:add "$TEST_APP" "$1"
}

run_plugin_script() {
  echo "paas has no Dokku plugin scripts to run: $*"
  return 1
}
