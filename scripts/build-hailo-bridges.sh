#!/usr/bin/env bash
# Builds the Hailo bridge (gst-florence/hailo/florence_hailo_bridge.cpp) as one
# shared library per HailoRT major, against HailoRT's public headers only:
#   <out>/libflorence_hailo_hailort5.so   HailoRT 5.x (Hailo-10H)
#   <out>/libflorence_hailo_hailort4.so   HailoRT 4.x (Hailo-8/8L)
# libhailort is not linked: its symbols stay undefined and resolve, at run
# time, against the libhailort the engine loads (RTLD_GLOBAL) before the
# bridge. So the bridges build on any machine with the headers, and florenced,
# the plugin and the packages use the NPU without a rebuild. The engine looks
# for these names (gst-florence/src/engine/hailo/bridge_search.rs).
#
#   bash scripts/build-hailo-bridges.sh [--target <rust triple>] [--headers DIR] [--out DIR]
#
# --target: x86_64-unknown-linux-gnu (default: this machine's) or
#   aarch64-unknown-linux-gnu (Raspberry Pi 5; cross-compiled with
#   aarch64-linux-gnu-g++, which `bash scripts/setup.sh --aarch64` installs).
# --headers: a folder holding hailort-5.2.0/include and hailort-4.23.0/include
#   (default $HAILORT_HEADERS_DIR, else ../shared/third_party beside the checkout).
# --out: default target/hailo-bridges/<triple> (under $CARGO_TARGET_DIR when set).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HEADERS="${HAILORT_HEADERS_DIR:-$ROOT/../shared/third_party}"
TARGET="$(uname -m)-unknown-linux-gnu"
OUT=""
# The header sets built, one per supported HailoRT major.
VERSIONS=(5.2.0 4.23.0)

usage() { printf 'usage: %s [--target <rust triple>] [--headers DIR] [--out DIR]\n' "$0" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --target) TARGET="${2:?}"; shift 2 ;;
    --headers) HEADERS="${2:?}"; shift 2 ;;
    --out) OUT="${2:?}"; shift 2 ;;
    *) usage ;;
  esac
done
OUT="${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/hailo-bridges/$TARGET}"

case "$TARGET" in
  "$(uname -m)-unknown-linux-gnu") CXX="${CXX:-g++}" ;;
  aarch64-unknown-linux-gnu) CXX=aarch64-linux-gnu-g++ ;;
  x86_64-unknown-linux-gnu) CXX=x86_64-linux-gnu-g++ ;;
  *) printf 'build-hailo-bridges: unsupported target %s\n' "$TARGET" >&2; exit 2 ;;
esac
if ! command -v "$CXX" >/dev/null; then
  printf 'build-hailo-bridges: %s not found (for %s: bash scripts/setup.sh --aarch64 installs it)\n' \
    "$CXX" "$TARGET" >&2
  exit 1
fi

mkdir -p "$OUT"
for v in "${VERSIONS[@]}"; do
  include="$HEADERS/hailort-$v/include"
  if [[ ! -f "$include/hailo/hailort.hpp" ]]; then
    printf 'build-hailo-bridges: %s/hailo/hailort.hpp not found\n' "$include" >&2
    exit 1
  fi
  major="${v%%.*}"
  lib="libflorence_hailo_hailort$major.so"
  # -fvisibility=hidden and the version script: only the header's functions
  # are exported (not the inline C++ of HailoRT's headers). No -z defs: the
  # HailoRT symbols are undefined on purpose.
  "$CXX" -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -fvisibility-inlines-hidden \
    -Wall -Wextra -Werror -DFLORENCE_HAILO_HAILORT_MAJOR="$major" \
    -I "$ROOT/gst-florence/hailo" -isystem "$include" \
    "$ROOT/gst-florence/hailo/florence_hailo_bridge.cpp" \
    -Wl,--version-script="$ROOT/gst-florence/hailo/florence_hailo_bridge.map" \
    -Wl,-soname,"$lib" -Wl,--as-needed -o "$OUT/$lib"
  printf 'build-hailo-bridges: %s/%s (HailoRT %s headers, %s)\n' "$OUT" "$lib" "$v" "$TARGET"
done
