#!/usr/bin/env bash
# Build llama-cpp-python with llama.cpp's Vulkan backend (-DGGML_VULKAN=on) as a wheel, or take
# it from the cache; print the wheel's path as the last line. setup.sh --vulkan and
# install.sh --vulkan call it; the CPU build they install otherwise is never touched.
#
#   bash scripts/build-llama-vulkan.sh PYTHON
#
# PYTHON is the venv's python: the wheel is built for its llama-cpp-python version (or
# $LLAMA_CPP_VERSION, else 0.3.36, the version the patch below is verified on). Cached in $QWEN_ASSISTANT_WHEELS (default
# ${XDG_CACHE_HOME:-~/.cache}/qwen-assistant/wheels), keyed by that version, the CMake flags,
# the patch (scripts/vulkan-layer-settings.py) and the installed Vulkan headers' version.
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

PYTHON="${1:?usage: build-llama-vulkan.sh PYTHON}"
CMAKE_FLAGS="-DGGML_VULKAN=on"
step() { printf '==> vulkan: %s\n' "$*" >&2; }
die() { printf 'build-llama-vulkan.sh: %s\n' "$*" >&2; exit 1; }

# 1. Debian's Vulkan headers and loader, and the shader compilers llama.cpp's build runs
APT_PACKAGES=(libvulkan-dev glslc glslang-tools spirv-headers)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || die "apt-get update failed: check the network, then run this again"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2 ||
    die "could not install ${missing[*]}; install them with apt and run this again"
fi

header=/usr/include/vulkan/vulkan_core.h
vk_header=$(sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\).*/\1/p' "$header")
[ -n "$vk_header" ] || die "$header has no VK_HEADER_VERSION: reinstall libvulkan-dev"
# the version: $LLAMA_CPP_VERSION, else the one PYTHON has, else the one this patch is verified on
VERIFIED=0.3.36
version="${LLAMA_CPP_VERSION:-$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || echo "$VERIFIED")}"

patch=scripts/vulkan-layer-settings.py
key=$(printf '%s\n' "$version" "$CMAKE_FLAGS" "$vk_header" "$(sha256sum <"$patch")" | sha256sum | cut -c1-16)
cache="${QWEN_ASSISTANT_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen-assistant/wheels}/vulkan-$key"
if wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -1) && [ -n "$wheel" ]; then
  step "cached: llama-cpp-python $version, $CMAKE_FLAGS, Vulkan headers 1.3.$vk_header"
  echo "$wheel"
  exit 0
fi

# 2. the sdist from PyPI (pinned by version), patched where the headers need it
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "downloading the llama-cpp-python $version sources"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version" >&2 ||
  die "pip could not download llama-cpp-python==$version: check that PyPI is reachable"
tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_python-*/)
vk_cpp="$src/vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp"
if [ "$vk_header" -lt 272 ]; then
  step "Vulkan headers 1.3.$vk_header < 1.3.272: guarding VK_EXT_layer_settings in ggml-vulkan.cpp"
  "$PYTHON" scripts/vulkan-layer-settings.py "$vk_cpp" ||
    die "the patch does not apply to this llama.cpp: use Vulkan headers >= 1.3.272"
fi

# 3. the wheel (about 12 minutes on 2 cores: llama.cpp and its ~100 compute shaders)
step "building llama-cpp-python $version with $CMAKE_FLAGS (this takes a while)"
mkdir -p "$cache"
CMAKE_ARGS="$CMAKE_FLAGS" "$PYTHON" -m pip wheel -q --no-deps -w "$cache" "$src" >&2 ||
  { rm -rf "$cache"; die "the Vulkan build failed (above); the CPU build is untouched"; }
ls "$cache"/llama_cpp_python-*.whl | head -1
