#!/usr/bin/env bash
# Build llama-cpp-python as a wheel, or take it from the cache; print the wheel's path as the
# last line. setup.sh calls it for .venv (and with --vulkan for .venv-vulkan), install.sh
# --vulkan for the service.
#
#   bash scripts/build-llama.sh PYTHON            the CPU build
#   bash scripts/build-llama.sh PYTHON --vulkan   with llama.cpp's Vulkan backend too
#
# PYTHON is the venv's python: the wheel is built for its llama-cpp-python version (or
# $LLAMA_CPP_VERSION, else 0.3.36, the version the patch below is verified on). Cached in
# $QWEN_ASSISTANT_WHEELS (default ${XDG_CACHE_HOME:-~/.cache}/qwen-assistant/wheels), keyed by
# that version and the CMake flags (and for Vulkan the patch, scripts/vulkan-layer-settings.py,
# and the installed Vulkan headers' version). pip's own wheel cache is keyed by the sources
# only, so it would hand back a wheel built with other flags: hence this cache.
#
# The CPU flags, by architecture: aarch64 gets the Pi 5's Cortex-A76 (armv8.2-a with dotprod
# and fp16, as install.sh builds it); x86_64 gets AVX2/FMA/F16C/BMI2 and not -march=native,
# because a native build on a CPU with AMX (Sapphire Rapids and newer) runs AMX tile
# instructions that a VM's kernel may not grant the process: every model load then dies
# with SIGILL (seen on this project's own CI machines).
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

PYTHON="${1:?usage: build-llama.sh PYTHON [--vulkan]}"
VULKAN=0
[ "${2:-}" != "--vulkan" ] || VULKAN=1
case "$(uname -m)" in
  x86_64) CPU_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" ;;
  aarch64) CPU_FLAGS="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" ;;
  *) CPU_FLAGS="-DGGML_NATIVE=ON" ;;
esac
if [ "$VULKAN" = 1 ]; then
  CMAKE_FLAGS="-DGGML_VULKAN=on $CPU_FLAGS" kind=vulkan
else
  CMAKE_FLAGS="$CPU_FLAGS" kind=cpu
fi
step() { printf '==> %s: %s\n' "$kind" "$*" >&2; }
die() { printf 'build-llama.sh: %s\n' "$*" >&2; exit 1; }

# 1. for Vulkan: Debian's headers and loader, and the shader compilers llama.cpp's build runs
APT_PACKAGES=()
[ "$VULKAN" = 0 ] || APT_PACKAGES=(libvulkan-dev glslc glslang-tools spirv-headers)
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

vk_header=0
if [ "$VULKAN" = 1 ]; then
  header=/usr/include/vulkan/vulkan_core.h
  vk_header=$(sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\).*/\1/p' "$header")
  [ -n "$vk_header" ] || die "$header has no VK_HEADER_VERSION: reinstall libvulkan-dev"
fi
# the version: $LLAMA_CPP_VERSION, else the one PYTHON has, else the one this patch is verified on
VERIFIED=0.3.36
version="${LLAMA_CPP_VERSION:-$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || echo "$VERIFIED")}"

patch=scripts/vulkan-layer-settings.py
patch_sum=""
[ "$VULKAN" = 0 ] || patch_sum=$(sha256sum <"$patch")
key=$(printf '%s\n' "$version" "$CMAKE_FLAGS" "$vk_header" "$patch_sum" | sha256sum | cut -c1-16)
cache="${QWEN_ASSISTANT_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/qwen-assistant/wheels}/$kind-$key"
if wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -1) && [ -n "$wheel" ]; then
  step "cached: llama-cpp-python $version, $CMAKE_FLAGS"
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
if [ "$VULKAN" = 1 ] && [ "$vk_header" -lt 272 ]; then
  step "Vulkan headers 1.3.$vk_header < 1.3.272: guarding VK_EXT_layer_settings in ggml-vulkan.cpp"
  "$PYTHON" scripts/vulkan-layer-settings.py "$vk_cpp" ||
    die "the patch does not apply to this llama.cpp: use Vulkan headers >= 1.3.272"
fi

# 3. the wheel (about 8 minutes on 2 cores; 12 with Vulkan's ~100 compute shaders)
step "building llama-cpp-python $version with $CMAKE_FLAGS (this takes a while)"
mkdir -p "$cache"
CMAKE_ARGS="$CMAKE_FLAGS" "$PYTHON" -m pip wheel -q --no-deps -w "$cache" "$src" >&2 ||
  { rm -rf "$cache"; die "the $kind build of llama-cpp-python failed (above)"; }
ls "$cache"/llama_cpp_python-*.whl | head -1
