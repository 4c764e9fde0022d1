# Shared by setup.sh, test.sh, build-llama.sh, build-llama-server.sh and test-arm64.sh
# (sourced, never run): the apt step, the llama-cpp-python sources, the CPU flags, ccache
# and the phase table test.sh prints at the end.

QA_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/qwen-assistant"
# The Debian packages, by who needs them (each script installs its own; test.sh all at once):
# setup.sh: a C/C++ toolchain and cmake build llama-cpp-python; libsystemd-dev and pkg-config
# build systemd-python; libportaudio2 is what sounddevice loads; espeak-ng and sox make the
# voices and noise of `bench wake`
SETUP_APT=(build-essential cmake pkg-config libsystemd-dev libportaudio2 python3-venv espeak-ng sox)
# build-llama.sh: ninja and ccache for every build
BUILD_APT=(ninja-build ccache)
# build-llama.sh --vulkan: the Vulkan headers and loader, the shader compilers; setup.sh
# --vulkan: Mesa's drivers (V3DV for the Pi 5's GPU; lavapipe elsewhere)
VULKAN_BUILD_APT=(libvulkan-dev glslc glslang-tools spirv-headers)
VULKAN_APT=(libvulkan1 mesa-vulkan-drivers)
# test.sh: systemd-analyze (the unit's checks), systemd-nspawn + debootstrap to boot the unit
# under a real systemd 252, sox for the noise the voice-activity tests mix under speech,
# Debian's chromium and its driver for the kiosk page's browser tests (no downloaded browser)
TEST_APT=(systemd systemd-container debootstrap sox chromium chromium-driver)
# test-arm64.sh, installed without recommends (no binfmt handlers come with qemu-user)
ARM64_TOOLS=(debootstrap qemu-user g++-aarch64-linux-gnu binutils-aarch64-linux-gnu)

# need_apt [--no-install-recommends] PKG...: install the Debian packages that are missing
# (sudo when not root; `apt-get update` once per run). Quiet when nothing is missing.
need_apt() {
  local opts=() missing=() p
  while [ "${1:-}" = --no-install-recommends ]; do opts+=("$1"); shift; done
  command -v dpkg-query >/dev/null || {
    echo "not a Debian system; install yourself: $*" >&2
    return 0
  }
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  printf '==> installing system packages: %s\n' "${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${QA_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq -o DPkg::Lock::Timeout=600 ||
      { echo "apt-get update failed: check the network" >&2; return 1; }
    export QA_APT_UPDATED=1
  fi
  local log
  log=$(mktemp)
  # (waits for another apt run's lock instead of failing: test.sh installs in the background)
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    "${opts[@]}" "${missing[@]}" >"$log" 2>&1 || {
    tail -20 "$log" >&2
    rm -f "$log"
    echo "could not install ${missing[*]}; install them with apt and run this again" >&2
    return 1
  }
  rm -f "$log"
  phase_note "apt: ${missing[*]}"
}

# The llama.cpp CPU flags for this machine's architecture (install.sh gives the Pi the same).
# Not -march=native on x86_64: a native build on a CPU with AMX dies with SIGILL in a VM whose
# kernel does not grant AMX tiles (build-llama.sh says more). LLAVA_BUILD=OFF: the
# multimodal library, which nothing here loads.
cpu_flags() {
  case "$(uname -m)" in
    x86_64) echo "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF" ;;
    aarch64) echo "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16 -DLLAVA_BUILD=OFF" ;;
    *) echo "-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" ;;
  esac
}

# llama_version PYTHON: $LLAMA_CPP_VERSION, else the llama-cpp-python PYTHON has, else 0.3.36
# (the version the Vulkan patch is verified on)
llama_version() {
  echo "${LLAMA_CPP_VERSION:-$("$1" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || echo 0.3.36)}"
}

# llama_sdist PYTHON VERSION: the sdist of llama-cpp-python VERSION, downloaded from PyPI once
# into $QA_CACHE/sdist and shared by every build (CPU, Vulkan, llama-server, aarch64); prints
# its path
llama_sdist() {
  local dir="$QA_CACHE/sdist" file
  file="$dir/llama_cpp_python-$2.tar.gz"
  if [ ! -s "$file" ]; then
    mkdir -p "$dir"
    local tmp
    tmp=$(mktemp -d "$dir/.download.XXXXXX")
    printf '==> downloading the llama-cpp-python %s sources\n' "$2" >&2
    "$1" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$2" >&2 ||
      { rm -rf "$tmp"; echo "pip could not download llama-cpp-python==$2: check that PyPI is reachable" >&2; return 1; }
    mv "$tmp"/llama_cpp_python-*.tar.gz "$file"
    rm -rf "$tmp"
  fi
  echo "$file"
}

# use_ccache: compile through ccache where it is installed (ggml's CMake picks it up by
# itself), its cache beside ours. Builds of the same sources at the same path with other
# backends then compile the files they share once: the Vulkan build reuses the CPU build's
# llama and ggml-cpu objects.
use_ccache() {
  command -v ccache >/dev/null || return 0
  export CCACHE_DIR="${CCACHE_DIR:-$QA_CACHE/ccache}" CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-3G}"
}

# -- the phase table --------------------------------------------------------------------------
# test.sh sets QA_PHASES to a file; phase NAME CMD... runs CMD and records its seconds and
# what the scripts it ran noted (phase_note "cached: ..."). Without QA_PHASES nothing is kept.
phase_note() {
  [ -n "${QA_PHASE_NOTES:-}" ] || return 0
  printf '%s; ' "$*" >>"$QA_PHASE_NOTES"
}

phase() {
  local name="$1" began rc=0 notes=""
  shift
  if [ -z "${QA_PHASES:-}" ]; then
    "$@"
    return
  fi
  export QA_PHASE_NOTES="$QA_PHASES.notes"
  : >"$QA_PHASE_NOTES"
  began=$(date +%s.%N)
  "$@" || rc=$?
  notes=$(cat "$QA_PHASE_NOTES")
  rm -f "$QA_PHASE_NOTES"
  unset QA_PHASE_NOTES
  printf '%s\t%s\t%s\t%s\n' "$name" "$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" "$rc" "${notes%; }" >>"$QA_PHASES"
  return "$rc"
}

phase_table() {
  [ -s "${QA_PHASES:-}" ] || return 0
  awk -F'\t' '
    BEGIN { printf "\n==> phases (seconds; what came from a cache)\n%-28s %9s  %s\n", "phase", "seconds", "notes" }
    { t += $2; printf "%-28s %9.1f  %s%s\n", $1, $2, ($3 == 0 ? "" : "FAILED (exit " $3 ") "), $4 }
    END { printf "%-28s %9.1f  (%.1f min)\n", "total", t, t / 60 }
  ' "$QA_PHASES"
}
