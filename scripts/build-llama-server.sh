#!/usr/bin/env bash
# Build llama-server, the serving peer `qwen-assistant bench api --peer` compares against, from
# the llama.cpp sources vendored in llama-cpp-python's sdist (the same llama.cpp the engine
# runs, with the same CPU flags as scripts/build-llama.sh), or take it from the cache. Prints
# the binary's path as the last line.
#
#   bash scripts/build-llama-server.sh [PYTHON]
#
# A benchmark tool, not a runtime dependency: nothing in the service uses it. The version is
# $LLAMA_CPP_VERSION, else the llama-cpp-python PYTHON (default .venv/bin/python) has, else
# 0.3.36. Cached in ${XDG_CACHE_HOME:-~/.cache}/qwen-assistant/llama-server/KEY, KEY from the
# version and the CMake flags. About 15-25 minutes on 2 cores the first time.
# LLAMA_SERVER_CACHED_ONLY=1: print the cached binary's path, or fail without building.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${1:-.venv/bin/python}"
case "$(uname -m)" in
  x86_64) CPU_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" ;;
  aarch64) CPU_FLAGS="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" ;;
  *) CPU_FLAGS="-DGGML_NATIVE=ON" ;;
esac
FLAGS="-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $CPU_FLAGS"
step() { printf '==> llama-server: %s\n' "$*" >&2; }
die() { printf 'build-llama-server.sh: %s\n' "$*" >&2; exit 1; }

for tool in cmake g++ make; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install cmake g++ make, then run this again"
done
version="${LLAMA_CPP_VERSION:-$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || echo 0.3.36)}"
key=$(printf '%s\n' "$version" "$FLAGS" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/qwen-assistant/llama-server/$key"
if [ -x "$cache/llama-server" ]; then
  step "cached: llama.cpp of llama-cpp-python $version"
  echo "$cache/llama-server"
  exit 0
fi

[ -z "${LLAMA_SERVER_CACHED_ONLY:-}" ] || die "not built yet: run bash scripts/build-llama-server.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "downloading the llama-cpp-python $version sources"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version" >&2 ||
  die "pip could not download llama-cpp-python==$version: check that PyPI is reachable"
tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
[ -d "$src/tools/server" ] || die "$src has no tools/server: this llama-cpp-python does not vendor it"
step "building tools/server with $CPU_FLAGS (15-25 minutes on 2 cores)"
# shellcheck disable=SC2086  # FLAGS is a list of words
cmake -S "$src" -B "$work/build" $FLAGS >"$work/cmake.log" 2>&1 ||
  { tail -20 "$work/cmake.log" >&2; die "cmake could not configure llama.cpp (above)"; }
cmake --build "$work/build" --target llama-server -j"$(nproc)" >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log" >&2; die "the llama-server build failed (above)"; }
mkdir -p "$cache"
cp "$work/build/bin/llama-server" "$cache/llama-server.part"
mv "$cache/llama-server.part" "$cache/llama-server"
echo "$cache/llama-server"
