#!/usr/bin/env bash
# Installs what florence needs on Debian 12 / Raspberry Pi OS bookworm:
#  - the GStreamer 1.22 development packages, tools and Python bindings (apt),
#  - ONNX Runtime's shared library, unpacked from the pinned PyPI wheel into
#    .ort/lib/ (nothing is downloaded from anywhere but the package registries),
#  - promtool (the tests check florenced's /metrics with it), taken out of
#    Debian's prometheus package into .tools/bin/ without installing the
#    package, which would start a Prometheus server.
#  - the pinned Python tools of the HTTP tests (schemathesis, openapi-python-client)
#    into .test-venv/ (scripts/setup-python-tools.sh).
#  - cargo-deb (pinned, `cargo install --locked`), which scripts/build-deb.sh uses
#    to make the Debian package.
#  - mdbook (pinned, `cargo install --locked`), which builds the book in docs/
#    (docs-check/tests/book.rs builds it in the test suite).
#  - with --aarch64 (CI passes it): what the Raspberry Pi 5 cross-build and its
#    check under qemu (scripts/cross-aarch64.sh) need (scripts/setup-aarch64.sh),
#    and the aarch64 ONNX Runtime in .ort-aarch64/lib.
#  - the benchmark's small Python venv (.venv-bench: onnxruntime, numpy, pillow,
#    tokenizers, onnx, onnxconverter-common, pinned in tools/bench/requirements-ort.txt)
#    that the `scripts/bench.sh --quick` test uses (it also writes the variants).
# Safe to run again: it only does what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AARCH64=0
for arg in "$@"; do
  case "$arg" in
    --aarch64) AARCH64=1 ;;
    *) printf 'usage: %s [--aarch64]\n' "$0" >&2; exit 2 ;;
  esac
done
ORT_VERSION="1.32.0"
TOOLS_DIR="$ROOT/.tools/bin"
# Debian 12's prometheus package; point releases only change the +debN suffix.
PROMETHEUS_DEB_VERSION="2.42.0+ds-5"
CARGO_DEB_VERSION="3.8.0"
# mdbook-linkcheck 0.7.7 is built for mdbook 0.4; the links are checked by
# docs-check/tests/links.rs instead. Only the HTML renderer and search: the
# `serve`/`watch` features pull in a web server the build does not need.
MDBOOK_VERSION="0.5.4"
declare -A ORT_WHEEL_SHA256=(
  [x86_64]="5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d"
  [aarch64]="2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c"
)
APT_PACKAGES=(
  pkg-config
  libgstreamer1.0-dev
  libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-x
  gstreamer1.0-tools
  python3-gi
  python3-venv
  gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
  gir1.2-gst-rtsp-server-1.0
  meson
  ninja-build
  systemd
  python3-venv
  dpkg-dev
  # seccomp-exec (the unit's seccomp filter in tests) links libseccomp;
  # scripts/trace-syscalls.sh records florenced's system calls with strace.
  libseccomp-dev
  strace
  # florenced/tests/readme_rest.rs runs the README's curl commands.
  curl
)

log() { printf 'setup: %s\n' "$*"; }

# shellcheck source=scripts/apt-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-common.sh"

# install_ort ARCH DIR: the library from the pinned wheel for ARCH into DIR.
install_ort() {
  local arch="$1" ort_dir="$2"
  local lib="$ort_dir/libonnxruntime.so.$ORT_VERSION"
  if [ -f "$lib" ] && [ -L "$ort_dir/libonnxruntime.so" ]; then
    log "ONNX Runtime $ORT_VERSION ($arch) present in $ort_dir"
    return
  fi
  local platform sha
  case "$arch" in
    x86_64|aarch64) platform="manylinux_2_28_$arch" ;;
    *) log "no pinned ONNX Runtime wheel for $arch"; exit 1 ;;
  esac
  sha="${ORT_WHEEL_SHA256[$arch]}"
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  log "fetching onnxruntime==$ORT_VERSION ($platform) from PyPI"
  python3 -m pip download --quiet --disable-pip-version-check "onnxruntime==$ORT_VERSION" \
    --no-deps --only-binary=:all: --platform "$platform" --python-version 3.11 -d "$tmp"
  local wheel
  wheel="$(ls "$tmp"/onnxruntime-"$ORT_VERSION"-*.whl)"
  echo "$sha  $wheel" | sha256sum --check --quiet - || {
    log "sha256 of $(basename "$wheel") does not match the pinned $sha"; exit 1;
  }
  mkdir -p "$ort_dir"
  python3 - "$wheel" "$ort_dir" "$ORT_VERSION" <<'PY'
import sys, zipfile, os
wheel, out, version = sys.argv[1:]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z:
    data = z.read(name)
tmp = os.path.join(out, f".libonnxruntime.so.{version}.part")
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, os.path.join(out, f"libonnxruntime.so.{version}"))
PY
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$ort_dir/libonnxruntime.so"
  log "ONNX Runtime $ORT_VERSION ($arch) unpacked into $ort_dir"
}

install_promtool() {
  if [ -x "$TOOLS_DIR/promtool" ]; then
    log "promtool present in $TOOLS_DIR"
    return
  fi
  local version
  version="$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')"
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    version="$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')"
  fi
  case "$version" in
    "$PROMETHEUS_DEB_VERSION"*) ;;
    *) log "prometheus $version is not the pinned $PROMETHEUS_DEB_VERSION"; exit 1 ;;
  esac
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  log "fetching promtool from the Debian package prometheus=$version"
  # As root, apt downloads as its own user, who cannot write into a private
  # temporary folder; it falls back to root anyway, so say so and spare the warning.
  local sandbox=()
  [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
  (cd "$tmp" && apt-get download -q "${sandbox[@]}" "prometheus=$version" >/dev/null)
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p "$TOOLS_DIR"
  install -m 755 "$tmp/x/usr/bin/promtool" "$TOOLS_DIR/promtool"
  log "promtool $version unpacked into $TOOLS_DIR"
}

install_cargo_deb() {
  if [ "$(cargo-deb --version 2>/dev/null)" = "cargo-deb $CARGO_DEB_VERSION" ]; then
    log "cargo-deb $CARGO_DEB_VERSION present"
    return
  fi
  log "installing cargo-deb $CARGO_DEB_VERSION from crates.io"
  cargo install --locked --quiet "cargo-deb@$CARGO_DEB_VERSION"
}

install_mdbook() {
  if [ "$(mdbook --version 2>/dev/null)" = "mdbook v$MDBOOK_VERSION" ]; then
    log "mdbook $MDBOOK_VERSION present"
    return
  fi
  log "installing mdbook $MDBOOK_VERSION from crates.io"
  cargo install --locked --quiet --no-default-features --features search "mdbook@$MDBOOK_VERSION"
}

install_bench_venv() {
  bash "$ROOT/tools/bench/make_venv.sh" "$ROOT/.venv-bench" "$ROOT/tools/bench/requirements-ort.txt"
  log "benchmark venv present in $ROOT/.venv-bench"
}

install_apt "system packages"
install_ort "$(uname -m)" "$ROOT/.ort/lib"
if [ "$AARCH64" -eq 1 ]; then
  bash "$ROOT/scripts/setup-aarch64.sh"
  install_ort aarch64 "$ROOT/.ort-aarch64/lib"
fi
install_promtool
install_cargo_deb
install_mdbook
bash "$ROOT/scripts/setup-python-tools.sh"
install_bench_venv
