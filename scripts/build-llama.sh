#!/usr/bin/env bash
# Build llama-cpp-python as a wheel, or take it from the cache; print the wheel's path as the
# last line. setup.sh calls it for .venv (and with --vulkan for .venv-vulkan), install.sh
# --vulkan for the service.
#
#   bash scripts/build-llama.sh PYTHON            the CPU build
#   bash scripts/build-llama.sh PYTHON --vulkan   with llama.cpp's Vulkan backend too
#
#   bash scripts/build-llama.sh PYTHON --cached-only   print the cached CPU wheel or fail
#
# PYTHON is the venv's python: the wheel is built for its llama-cpp-python version (or
# $LLAMA_CPP_VERSION, else 0.3.36, the version the patch below is verified on). Cached in
# $QWEN_ASSISTANT_WHEELS (default ${XDG_CACHE_HOME:-~/.cache}/qwen-assistant/wheels), keyed by
# that version and the CMake flags (and for Vulkan the patch, scripts/vulkan-layer-settings.py,
# and the installed Vulkan headers' version). pip's own wheel cache is keyed by the sources
# only, so it would hand back a wheel built with other flags: hence this cache.
#
# Built once: the CPU build also builds llama-server (the peer `bench api --peer` measures
# against) in the same CMake tree, linked to the wheel's own libraries, and puts it beside the
# wheel (scripts/build-llama-server.sh prints its path). Every build compiles the one copy of
# the sources (scripts/lib.sh, llama_sdist) through ccache where it is installed, so the Vulkan
# build compiles only what Vulkan adds.
#
# The CPU flags, by architecture (scripts/lib.sh, cpu_flags): aarch64 gets the Pi 5's
# Cortex-A76 (armv8.2-a with dotprod and fp16, as install.sh builds it); x86_64 gets
# AVX2/FMA/F16C/BMI2 and not -march=native, because a native build on a CPU with AMX (Sapphire
# Rapids and newer) runs AMX tile instructions that a VM's kernel may not grant the process:
# every model load then dies with SIGILL (seen on this project's own CI machines). No build
# makes the multimodal library (LLAVA_BUILD=OFF): nothing here loads it.
#
# The patch: llama.cpp (as vendored in llama-cpp-python 0.3.36) uses VK_EXT_layer_settings
# (vk::LayerSettingEXT, Vulkan headers 1.3.272 and newer) in ggml_vk_instance_init() without
# the VK_HEADER_VERSION guard other blocks of ggml/src/ggml-vulkan/ggml-vulkan.cpp have, so it
# does not compile with Debian 12's / Raspberry Pi OS Bookworm's headers (1.3.239). With
# older headers the block is guarded (#if VK_HEADER_VERSION >= 272), the #else creating the
# instance without the layer settings (which only configure the validation layer, used with
# GGML_VK_VALIDATE). Newer headers build the sources unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PYTHON="${1:?usage: build-llama.sh PYTHON [--vulkan|--cached-only]}"
VULKAN=0 CACHED_ONLY=0
case "${2:-}" in
  --vulkan) VULKAN=1 ;;
  --cached-only) CACHED_ONLY=1 ;;
esac
CPU_FLAGS=$(cpu_flags)
if [ "$VULKAN" = 1 ]; then
  CMAKE_FLAGS="-DGGML_VULKAN=on $CPU_FLAGS" kind=vulkan
else
  CMAKE_FLAGS="$CPU_FLAGS" kind=cpu
fi
step() { printf '==> %s: %s\n' "$kind" "$*" >&2; }
die() { printf 'build-llama.sh: %s\n' "$*" >&2; exit 1; }

# 1. the tools: ninja and ccache for every build; for Vulkan, Debian's headers and loader and
#    the shader compilers llama.cpp's build runs
APT_PACKAGES=("${BUILD_APT[@]}")
[ "$VULKAN" = 0 ] || APT_PACKAGES+=("${VULKAN_BUILD_APT[@]}")
[ "$CACHED_ONLY" = 1 ] || need_apt "${APT_PACKAGES[@]}" || die "the build tools could not be installed (above)"

vk_header=0
if [ "$VULKAN" = 1 ]; then
  header=/usr/include/vulkan/vulkan_core.h
  vk_header=$(sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\).*/\1/p' "$header")
  [ -n "$vk_header" ] || die "$header has no VK_HEADER_VERSION: reinstall libvulkan-dev"
fi
version=$(llama_version "$PYTHON")

patch=scripts/vulkan-layer-settings.py
patch_sum=""
[ "$VULKAN" = 0 ] || patch_sum=$(sha256sum <"$patch")
layout="server-beside-cpu-wheel"  # what a cache entry holds (the CPU one: llama-server too)
key=$(printf '%s\n' "$version" "$CMAKE_FLAGS" "$vk_header" "$patch_sum" "$layout" | sha256sum | cut -c1-16)
cache="${QWEN_ASSISTANT_WHEELS:-$QA_CACHE/wheels}/$kind-$key"
if wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -1) && [ -n "$wheel" ] &&
  { [ "$VULKAN" = 1 ] || [ -x "$cache/llama-server" ]; }; then
  step "cached: llama-cpp-python $version, $CMAKE_FLAGS"
  phase_note "cached: $kind llama-cpp-python"
  echo "$wheel"
  exit 0
fi
[ "$CACHED_ONLY" = 0 ] || die "not built yet: run bash scripts/build-llama.sh $PYTHON"

# 2. the sources: one unpacked copy of the sdist per version, shared by the builds (one at a
#    time: a build writes its libraries into llama_cpp/lib there)
sdist=$(llama_sdist "$PYTHON" "$version") || die "no sources (above)"
src="$QA_CACHE/src/llama_cpp_python-$version"
mkdir -p "$QA_CACHE/src"
exec 9>"$src.lock"
flock 9
if [ ! -e "$src/.complete" ]; then
  rm -rf "$src" "$src.part"
  mkdir -p "$src.part"
  tar -xzf "$sdist" -C "$src.part" --strip-components=1
  touch "$src.part/.complete"
  mv "$src.part" "$src"
fi
rm -rf "$src/llama_cpp/lib"  # another build's libraries must not land in this wheel
vk_cpp="$src/vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp"
if [ "$VULKAN" = 1 ] && [ "$vk_header" -lt 272 ] &&
  ! grep -q "qwen-assistant: VK_EXT_layer_settings" "$vk_cpp"; then
  # the guard keeps newer headers on the original code, so the shared copy stays right for all
  step "Vulkan headers 1.3.$vk_header < 1.3.272: guarding VK_EXT_layer_settings in ggml-vulkan.cpp"
  "$PYTHON" "$patch" "$vk_cpp" ||
    die "the patch does not apply to this llama.cpp: use Vulkan headers >= 1.3.272"
fi

# 3. the wheel (about 6 minutes on 2 cores; Vulkan adds its ~100 compute shaders), then for
#    the CPU build llama-server in the same tree
use_ccache
work=$(mktemp -d "$QA_CACHE/build.XXXXXX")
trap 'rm -rf "$work" "$cache.part"; rm -rf "$src/llama_cpp/lib"' EXIT
rm -rf "$cache.part"
mkdir -p "$cache.part"
step "building llama-cpp-python $version with $CMAKE_FLAGS (this takes a while)"
CMAKE_ARGS="$CMAKE_FLAGS" "$PYTHON" -m pip wheel -q --no-deps -w "$cache.part" \
  --config-settings=build-dir="$work/build" "$src" >&2 ||
  die "the $kind build of llama-cpp-python failed (above)"
if [ "$VULKAN" = 0 ]; then
  step "llama-server in the same tree (the peer of bench api --peer)"
  # shellcheck disable=SC2086  # CMAKE_FLAGS is a list of words
  cmake -S "$src" -B "$work/build" -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_OPENSSL=OFF $CMAKE_FLAGS >"$work/server-cmake.log" 2>&1 ||
    { tail -20 "$work/server-cmake.log" >&2; die "cmake could not add llama-server (above)"; }
  cmake --build "$work/build" --target llama-server -j"$(nproc)" >"$work/server-build.log" 2>&1 ||
    { tail -30 "$work/server-build.log" >&2; die "the llama-server build failed (above)"; }
  mkdir -p "$cache.part/server"
  cp "$(find "$work/build" -name llama-server -type f -perm -u+x | head -1)" "$cache.part/server/"
  find "$work/build" -name 'lib*.so*' \( -type f -o -type l \) -exec cp -P {} "$cache.part/server/" \;
  # the wheel's libraries, found by the loader whatever the build tree's rpath said
  cat >"$cache.part/llama-server" <<'WRAP'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")/server
LD_LIBRARY_PATH="$here${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/llama-server" "$@"
WRAP
  chmod +x "$cache.part/llama-server"
fi
rm -rf "$cache"
mv "$cache.part" "$cache"
phase_note "built: $kind llama-cpp-python$([ "$VULKAN" = 1 ] || echo ' + llama-server')"
ls "$cache"/llama_cpp_python-*.whl | head -1
