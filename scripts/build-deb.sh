#!/usr/bin/env bash
# Builds the Debian package hailo-florence_<version>-1_<arch>.deb with cargo-deb
# (installed by scripts/setup.sh): florenced, the GStreamer plugin, the private
# ONNX Runtime (.ort/lib), the unit rendered for /usr, the default configuration
# (a conffile) and the maintainer scripts in florenced/debian/.
#   scripts/build-deb.sh [--profile release|dev] [--no-build] [--output DIR]
# --profile dev packages target/debug (quick, for tests; cargo-deb warns that dev is
# not for releases); --no-build packages what is already built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
profile=release
build=1
output="$ROOT/target/debian"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --output) output=$2; shift 2 ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release|dev) ;;
  *) echo "build-deb.sh: --profile release or dev, not $profile" >&2; exit 2 ;;
esac
command -v cargo-deb >/dev/null || { echo "build-deb.sh: no cargo-deb (bash scripts/setup.sh installs it)" >&2; exit 1; }
[ -e .ort/lib/libonnxruntime.so ] || { echo "build-deb.sh: no ONNX Runtime in .ort/lib (bash scripts/setup.sh)" >&2; exit 1; }
arch=$(dpkg --print-architecture)
case "$arch" in
  amd64|arm64) ;;
  *) echo "build-deb.sh: no package variant for $arch (florenced/Cargo.toml has amd64 and arm64)" >&2; exit 1 ;;
esac
if [ "$build" = 1 ]; then
  cargo build --locked --profile "$profile" -p florenced -p gst-florence
fi
# The unit with the package's paths (the asset florenced/Cargo.toml names).
mkdir -p target/debian "$output"
systemd/render-unit.sh /usr /usr/share/doc/hailo-florence >target/debian/hailo-florence.service
fast=()
[ "$profile" = dev ] && fast=(--fast)
# cargo-deb prints the package's path on stdout.
cargo deb -p florenced --no-build --profile "$profile" --variant "$arch" "${fast[@]}" --output "$output"
