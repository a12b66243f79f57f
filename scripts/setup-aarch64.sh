#!/usr/bin/env bash
# What the aarch64 (Raspberry Pi 5) cross-build and its emulated check
# (scripts/cross-aarch64.sh) need; `bash scripts/setup.sh --aarch64` runs it
# (CI does; a native build needs none of it):
#  - apt: the cross compilers gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu
#    (the Hailo bridges, scripts/build-hailo-bridges.sh) and qemu-user,
#  - the Rust target aarch64-unknown-linux-gnu (rustup),
#  - .sysroot-aarch64/: Debian 12's arm64 GStreamer and GLib development
#    packages with everything they depend on, unpacked from their .debs.
# setup.sh itself unpacks the aarch64 ONNX Runtime into .ort-aarch64/lib.
#
# Why a sysroot and not `apt-get install libgstreamer-plugins-base1.0-dev:arm64`
# (dpkg multiarch): installing it next to the amd64 packages makes apt remove
# the installed libgstreamer-plugins-base1.0-dev (amd64) ("Removing:
# libgstreamer-plugins-base1.0-dev:amd64 as upgrade is not an option for
# libgstreamer-plugins-base1.0-dev:arm64"), and it upgrades every amd64 library
# whose arm64 twin it pulls in (27 on the machine this was written on), as
# multiarch needs both at one version. Unpacked .debs touch neither.
# Safe to run again: it only does what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SYSROOT="$ROOT/.sysroot-aarch64"
RUST_TARGET="aarch64-unknown-linux-gnu"
APT_PACKAGES=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user)
# What the crates link (gstreamer, -base, -video, -app, glib, gobject, gio) and
# the C library, and gst-launch-1.0 to run the plugin; apt adds their dependencies.
SYSROOT_PACKAGES=(libc6-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libglib2.0-dev
  gstreamer1.0-tools)
# Mesa's drivers and the libraries only they need (about 150 MB unpacked):
# nothing here links or loads libgstreamer-gl, which pulls them in.
SYSROOT_SKIP='^(libllvm[0-9]+|libz3-[0-9]+|libgl1-mesa-dri)_'

log() { printf 'setup-aarch64: %s\n' "$*"; }

# shellcheck source=scripts/apt-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-common.sh"

install_rust_target() {
  if rustup target list --installed | grep -qx "$RUST_TARGET"; then
    log "Rust target $RUST_TARGET present"
    return
  fi
  rustup target add "$RUST_TARGET"
}

# apt reads arm64 package lists only once the architecture is known to dpkg;
# this changes no installed package.
enable_arm64_lists() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg (package lists only)"
    as_root dpkg --add-architecture arm64
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  elif apt-cache policy libc6:arm64 | grep -q 'Candidate: (none)'; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  fi
}

install_sysroot() {
  local want
  want="$(printf '%s\n' "${SYSROOT_PACKAGES[@]}")"
  if [ -f "$SYSROOT/.packages" ] && [ "$(cat "$SYSROOT/.packages")" = "$want" ]; then
    log "arm64 sysroot present in $SYSROOT"
    return
  fi
  enable_arm64_lists
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/archives/partial"
  : >"$tmp/status"
  local sandbox=()
  [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
  log "fetching ${SYSROOT_PACKAGES[*]} (arm64) and their dependencies"
  # An empty dpkg status makes apt resolve the whole dependency closure, as for
  # an empty arm64 system, and only download it (no root needed, nothing installed).
  local arm64=()
  for p in "${SYSROOT_PACKAGES[@]}"; do arm64+=("$p:arm64"); done
  apt-get install --download-only --no-install-recommends -y -q \
    -o Dir::State::status="$tmp/status" -o Dir::Cache::archives="$tmp/archives" \
    -o Debug::NoLocking=1 "${sandbox[@]}" "${arm64[@]}" >/dev/null
  local part="$SYSROOT.part"
  rm -rf "$part"
  mkdir -p "$part"
  local deb n=0
  for deb in "$tmp"/archives/*_arm64.deb; do
    [[ "$(basename "$deb")" =~ $SYSROOT_SKIP ]] && continue
    dpkg-deb -x "$deb" "$part"
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$part/.versions"
    n=$((n + 1))
  done
  # Absolute links (/lib/aarch64-linux-gnu/...) would point into the host.
  local link target
  while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$part$target")" "$link"
  done < <(find "$part" -type l -lname '/*' -print0)
  printf '%s\n' "$want" >"$part/.packages"
  rm -rf "$SYSROOT"
  mv "$part" "$SYSROOT"
  log "arm64 sysroot ($n packages, $(du -sh "$SYSROOT" | cut -f1)) unpacked into $SYSROOT"
}

install_apt "cross compiler and qemu-user"
install_rust_target
install_sysroot
