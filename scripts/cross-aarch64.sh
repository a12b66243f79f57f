#!/usr/bin/env bash
# Cross-builds florenced and the GStreamer plugin (libgstflorence.so) for
# aarch64-unknown-linux-gnu (Raspberry Pi 5, Raspberry Pi OS bookworm), then
# runs the aarch64 florenced under qemu-user, emulating the Pi 5's Cortex-A76,
# with the aarch64 ONNX Runtime on the tiny model's fixture cases, checked
# token for token against the references (scripts/check-run-fixtures.py).
# Needs `bash scripts/setup.sh --aarch64` (cross compiler, qemu-user, the Rust
# target, the arm64 sysroot .sysroot-aarch64/ and .ort-aarch64/).
#   bash scripts/cross-aarch64.sh [--build-only]
# Output: target/aarch64-unknown-linux-gnu/debug/{florenced,libgstflorence.so}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_ONLY=0
case "${1:-}" in
  "") ;;
  --build-only) BUILD_ONLY=1 ;;
  *) printf 'usage: %s [--build-only]\n' "$0" >&2; exit 2 ;;
esac
TARGET="aarch64-unknown-linux-gnu"
SYSROOT="$ROOT/.sysroot-aarch64"
ORT_LIBRARY="$ROOT/.ort-aarch64/lib/libonnxruntime.so.1.32.0"
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/debug"

log() { printf 'cross-aarch64: %s\n' "$*"; }

for need in "$SYSROOT/.packages" "$ORT_LIBRARY"; do
  if [ ! -e "$need" ]; then
    log "$need is missing: run bash scripts/setup.sh --aarch64"; exit 1
  fi
done

# shellcheck source=scripts/cross-env-aarch64.sh
source "$ROOT/scripts/cross-env-aarch64.sh"
# A check build: no debug info (a third of the disk and less link time).
export CARGO_PROFILE_DEV_DEBUG=false

started=$SECONDS
log "building florenced and gst-florence for $TARGET"
cargo build --locked --target "$TARGET" -p florenced -p gst-florence
build_s=$((SECONDS - started))
for f in florenced libgstflorence.so; do
  log "built $OUT/$f: $(file -b "$OUT/$f" | cut -d, -f1-2)"
done
log "build: ${build_s} s"
[ "$BUILD_ONLY" -eq 1 ] && exit 0

cross_launcher
launcher=("${CROSS_LAUNCHER[@]}")
run_started=$SECONDS
log "florenced run under ${launcher[*]:0:3} with $ORT_LIBRARY"
python3 scripts/check-run-fixtures.py --launcher "$(printf '%q ' "${launcher[@]}")" \
  "$OUT/florenced" --ort-library "$ORT_LIBRARY"
check_s=$((SECONDS - run_started))

# The plugin: the aarch64 gst-launch-1.0 loads libgstflorence.so and captions
# one frame (the fixture image as raw RGB, decoded by the host's GStreamer);
# the caption its text_src pad gives must be the recorded 3-beam one.
plugin_started=$SECONDS
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
want="$(fixture_frame "$tmp")"
log "plugin: gst-launch-1.0 (aarch64) filesrc ! florencecaption ! fakesink on scene_640x480"
# No fork under qemu-user (it would exec gst-plugin-scanner without qemu), a
# registry of its own, and only the sysroot's and this build's plugins.
if ! GST_REGISTRY_FORK=no GST_REGISTRY_1_0="$tmp/registry.bin" \
  GST_PLUGIN_SYSTEM_PATH_1_0="$SYSROOT/usr/lib/aarch64-linux-gnu/gstreamer-1.0" \
  GST_PLUGIN_PATH_1_0="$OUT" \
  "${launcher[@]}" "$SYSROOT/usr/bin/gst-launch-1.0" -q \
  filesrc location="$tmp/frame.rgb" blocksize=$((640 * 480 * 3)) ! \
  video/x-raw,format=RGB,width=640,height=480,framerate=0/1 ! \
  florencecaption name=f mode=every-frame model-dir=tests/fixtures/tiny-florence2 \
  ort-library="$ORT_LIBRARY" threads=1 ! fakesink \
  f.text_src ! queue ! filesink location="$tmp/caption.txt"; then
  log "plugin: gst-launch-1.0 failed"; exit 1
fi
got="$(cat "$tmp/caption.txt")"
if [ "$got" != "$want" ]; then
  log "plugin: FAIL: caption '$got', recorded '$want'"; exit 1
fi
log "plugin: ok: '$got'"
log "build ${build_s} s, emulated fixture cases ${check_s} s, plugin $((SECONDS - plugin_started)) s, total $((SECONDS - started)) s"
