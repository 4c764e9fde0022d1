#!/usr/bin/env bash
# llama-server, the serving peer `qwen-assistant bench api --peer` compares against: built by
# scripts/build-llama.sh in the same CMake tree as the CPU llama-cpp-python wheel (the same
# llama.cpp, flags and libraries the engine runs), and cached beside it. Prints the path of the
# program to run as the last line.
#
#   bash scripts/build-llama-server.sh [PYTHON]
#
# A benchmark tool, not a runtime dependency: nothing in the service uses it. PYTHON (default
# .venv/bin/python) picks the llama-cpp-python version, as for build-llama.sh. When the CPU
# wheel is already cached with its llama-server this takes a second; otherwise it is the CPU
# build (about 8 minutes on 2 cores).
# LLAMA_SERVER_CACHED_ONLY=1: print the cached program's path, or fail without building.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${1:-.venv/bin/python}"
mode=()
[ -z "${LLAMA_SERVER_CACHED_ONLY:-}" ] || mode=(--cached-only)
wheel=$(bash scripts/build-llama.sh "$PYTHON" "${mode[@]}" | tail -1) ||
  { echo "build-llama-server.sh: no llama-server (above)" >&2; exit 1; }
server="$(dirname "$wheel")/llama-server"
[ -x "$server" ] || { echo "build-llama-server.sh: $server is missing" >&2; exit 1; }
echo "$server"
