#!/usr/bin/env bash
# Sourced (not run) by scripts/cross-aarch64.sh, build-deb.sh and deb-arm64-check.sh: the
# environment that makes cargo build for aarch64-unknown-linux-gnu against the
# arm64 sysroot .sysroot-aarch64/ (bash scripts/setup.sh --aarch64 makes it).
# Sets CROSS_TARGET and CROSS_SYSROOT; needs ROOT (the checkout).
#
# Every setting names the target, so the native build (and build scripts,
# which run on the host) never sees the arm64 sysroot: cargo's per-target
# linker and flags, the cc crate's CC_<target>/CFLAGS_<target> (ring and
# onig_sys compile C), the pkg-config crate's <VAR>_<target> (the -sys crates).
# cargo-deb finds aarch64-linux-gnu-strip and -objcopy (binutils, a dependency
# of the cross compiler) by the target's name.
# shellcheck disable=SC2034 # for the scripts that source this
CROSS_TARGET="aarch64-unknown-linux-gnu"
CROSS_SYSROOT="$ROOT/.sysroot-aarch64"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$CROSS_SYSROOT"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CFLAGS_aarch64_unknown_linux_gnu="--sysroot=$CROSS_SYSROOT"
export PKG_CONFIG_ALLOW_CROSS_aarch64_unknown_linux_gnu=1
export PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu="$CROSS_SYSROOT"
export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu="$CROSS_SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$CROSS_SYSROOT/usr/share/pkgconfig"
export PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=""

# cross_launcher: sets CROSS_LAUNCHER, the command prefix that runs an aarch64
# program of the sysroot's world under qemu-user, emulating the Pi 5's
# Cortex-A76. No binfmt_misc in containers: qemu is called explicitly. -L makes
# the guest's loader and libraries come from the sysroot, and any path that
# exists under it shadows the host's: qemu 7.2 (Debian 12) shows an aarch64
# guest the host's x86 /proc/cpuinfo, from which ONNX Runtime's cpuinfo finds
# no ARM core (no MIDR) and crashes with SIGSEGV in its first session, so the
# guest gets a Pi 5's: Cortex-A76 cores (implementer 0x41, part 0xd0b), as many
# as the host has (cpuinfo pairs them with /sys/devices/system/cpu/present).
cross_launcher() {
  local i
  mkdir -p "$CROSS_SYSROOT/proc"
  for ((i = 0; i < $(nproc --all); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\n' "$i"
    printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n'
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n'
  done >"$CROSS_SYSROOT/proc/cpuinfo"
  # shellcheck disable=SC2034 # for the scripts that source this
  CROSS_LAUNCHER=(qemu-aarch64 -cpu cortex-a76 -L "$CROSS_SYSROOT"
    -E "LD_LIBRARY_PATH=$CROSS_SYSROOT/usr/lib/aarch64-linux-gnu:$CROSS_SYSROOT/lib/aarch64-linux-gnu")
}

# fixture_frame DIR: the fixture image scene_640x480 as raw RGB in DIR/frame.rgb
# (decoded by the host's GStreamer), and on stdout its recorded 3-beam
# <CAPTION>: what an emulated pipeline captioning that frame must answer.
fixture_frame() {
  gst-launch-1.0 -q filesrc location="$ROOT/tests/fixtures/images/scene_640x480.png" ! pngdec ! \
    videoconvert ! video/x-raw,format=RGB ! filesink location="$1/frame.rgb"
  python3 -c 'import json, sys
refs = json.load(open(sys.argv[1]))
case = next(c for c in refs["cases"] if c["image"] == "scene_640x480" and c["task"] == "<CAPTION>")
print(case["beam3"]["parsed"])' "$ROOT/tests/fixtures/references.json"
}
