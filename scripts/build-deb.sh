#!/usr/bin/env bash
# Builds the Debian package hailo-florence_<version>-1_<arch>.deb and its debug
# symbols hailo-florence-dbgsym_<version>-1_<arch>.ddeb with cargo-deb
# (installed by scripts/setup.sh): florenced and the GStreamer plugin stripped,
# the architecture's private ONNX Runtime, the Hailo bridges when built, the unit
# rendered for /usr, the default configuration (a conffile) and the maintainer
# scripts in florenced/debian/.
#   scripts/build-deb.sh [--arch amd64|arm64] [--profile release|dev] [--no-build] [--output DIR]
# --arch defaults to this machine's; arm64 on an amd64 machine is the
# cross-build of scripts/cross-aarch64.sh (bash scripts/setup.sh --aarch64).
# --profile dev packages target/debug (quick, for tests; cargo-deb warns that dev
# is not for releases); --no-build packages what is already built.
# cargo-deb prints the .ddeb's path, then the .deb's (the last line).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
profile=release
build=1
output="$ROOT/target/debian"
host_arch=$(dpkg --print-architecture)
arch=$host_arch
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --output) output=$2; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) profile_dir=release ;;
  dev) profile_dir=debug ;;
  *) echo "build-deb.sh: --profile release or dev, not $profile" >&2; exit 2 ;;
esac
command -v cargo-deb >/dev/null || { echo "build-deb.sh: no cargo-deb (bash scripts/setup.sh installs it)" >&2; exit 1; }

# The Rust target and where setup.sh put ONNX Runtime for it: .ort/lib is this
# machine's architecture, .ort-aarch64/lib the cross-build's (setup.sh --aarch64).
case "$arch" in
  amd64) triple=x86_64-unknown-linux-gnu ;;
  arm64) triple=aarch64-unknown-linux-gnu ;;
  *) echo "build-deb.sh: --arch amd64 or arm64 (the variants in florenced/Cargo.toml), not $arch" >&2; exit 2 ;;
esac
target_args=()
if [ "$arch" = "$host_arch" ]; then
  ort_dir=.ort/lib
  cargo_out="target/$profile_dir"
  ort_hint="bash scripts/setup.sh"
elif [ "$arch" = arm64 ] && [ "$host_arch" = amd64 ]; then
  ort_dir=.ort-aarch64/lib
  cargo_out="target/$triple/$profile_dir"
  ort_hint="bash scripts/setup.sh --aarch64"
  [ -e .sysroot-aarch64/.packages ] || { echo "build-deb.sh: no arm64 sysroot in .sysroot-aarch64 ($ort_hint)" >&2; exit 1; }
  # shellcheck source=scripts/cross-env-aarch64.sh
  source "$ROOT/scripts/cross-env-aarch64.sh"
  target_args=(--target "$triple")
else
  echo "build-deb.sh: cannot build an $arch package on $host_arch (only arm64 is cross-built, from amd64)" >&2; exit 1
fi
[ -e "$ort_dir/libonnxruntime.so" ] || { echo "build-deb.sh: no ONNX Runtime in $ort_dir ($ort_hint)" >&2; exit 1; }

if [ "$build" = 1 ]; then
  cargo build --locked --profile "$profile" "${target_args[@]}" -p florenced -p gst-florence
fi
for f in florenced libgstflorence.so; do
  [ -e "$cargo_out/$f" ] || { echo "build-deb.sh: no $cargo_out/$f (build it, or leave out --no-build)" >&2; exit 1; }
done

# The unit with the package's paths, and the architecture's ONNX Runtime where
# the variant's asset names it (a link: cargo-deb packages the file).
mkdir -p "target/debian/$arch" "$output"
systemd/render-unit.sh /usr /usr/share/doc/hailo-florence >target/debian/hailo-florence.service
ln -sfn "$ROOT/$ort_dir/libonnxruntime.so" "target/debian/$arch/libonnxruntime.so"

# The Hailo bridges (run-time-loaded shared libraries) are built into
# target/hailo-bridges/<rust target triple>/ by the bridge build script; when
# there are any, the -hailo variant ships them in /usr/lib/florence/hailo/. They
# are staged into the cargo output folder (a copy, never a link: cargo-deb
# replaces nothing there) because cargo-deb strips, and splits the symbols of,
# only what it finds under target/<profile>/.
# With HailoRT's public headers at hand (CI has them beside the checkout;
# HAILORT_HEADERS_DIR elsewhere) the bridges are built here, for the package's
# architecture, so every package CI makes can use a Hailo device; without them
# the package is built without bridges and says so.
headers="${HAILORT_HEADERS_DIR:-$ROOT/../shared/third_party}"
if [ -f "$headers/hailort-5.2.0/include/hailo/hailort.hpp" ] && [ -f "$headers/hailort-4.23.0/include/hailo/hailort.hpp" ]; then
  bash scripts/build-hailo-bridges.sh --target "$triple" --headers "$headers" --out "target/hailo-bridges/$triple" >&2
elif ! compgen -G "target/hailo-bridges/$triple/*.so" >/dev/null; then
  echo "build-deb.sh: no HailoRT headers in $headers and no built bridges: this package cannot use a Hailo device" >&2
fi
variant=$arch
stage="$cargo_out/hailo-bridges"
rm -rf "$stage"
if compgen -G "target/hailo-bridges/$triple/*.so" >/dev/null; then
  mkdir -p "$stage"
  cp "target/hailo-bridges/$triple/"*.so "$stage/"
  variant="$arch-hailo"
fi

fast=()
[ "$profile" = dev ] && fast=(--fast)
cargo deb -p florenced --no-build --profile "$profile" "${target_args[@]}" --variant "$variant" \
  "${fast[@]}" --output "$output"
