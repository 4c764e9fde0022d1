#!/usr/bin/env bash
# The Pi's architecture (aarch64, Raspberry Pi OS Bookworm, Python 3.11), checked on this x86
# machine: install.sh's Pi 5 flags cross-compile llama.cpp, every runtime dependency resolves
# for aarch64, and the project with the stand-in models answers under qemu-aarch64 user
# emulation with the Cortex-A76's features. scripts/test.sh runs it before pytest;
# tests/test_arm64.py reads its result (build/arm64/result.json). What it does, step by
# step: scripts/arm64_check.py. Cached in ${XDG_CACHE_HOME:-~/.cache}/qwen-assistant/arm64.
#
# It changes nothing outside its cache and build/: the emulator is run by name
# (qemu-aarch64 -L ROOT ...); no binfmt handler is registered (qemu-user is installed without
# its recommended qemu-user-binfmt) and the root is never chrooted into.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_apt --no-install-recommends "${ARM64_TOOLS[@]}"
if [ "${1:-}" = --prepare ]; then  # downloads only, before .venv exists (scripts/test.sh)
  exec python3 scripts/arm64_check.py "$@"
fi
# the llama-cpp-python sources every build shares (downloaded once)
QA_LLAMA_SDIST=$(llama_sdist .venv/bin/python "$(llama_version .venv/bin/python)")
export QA_LLAMA_SDIST
exec .venv/bin/python scripts/arm64_check.py "$@"
