#!/usr/bin/env bash
# Installs what florence needs on Debian 12 / 13 and Raspberry Pi OS bookworm /
# trixie (scripts/debian-root-check.sh runs it in a fresh root of each):
#  - the GStreamer development packages (1.22 on Debian 12, 1.26 on 13), tools and
#    Python bindings (apt),
#  - ONNX Runtime's shared library, unpacked from the pinned PyPI wheel (its
#    sha256 pinned) into .ort/lib/ (nothing is downloaded from anywhere but the
#    package registries; pip runs in a throwaway venv, as a fresh Debian has no
#    system pip),
#  - promtool (the tests check florenced's /metrics with it), taken out of
#    Debian's package into .tools/bin/ without installing it (Debian 12 has it
#    in prometheus, whose installation would start a Prometheus server; Debian
#    13 in promtool); any 2.x from 2.42 (Debian 12) on is accepted (13 has 2.53).
#  - the pinned Python tools of the HTTP tests (schemathesis, openapi-python-client,
#    Playwright for the page's browser test over Debian's chromium) into
#    .test-venv/ (scripts/setup-python-tools.sh).
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
# The promtool versions accepted: 2.x from Debian 12's 2.42 on (Debian 13 has
# 2.53); the tests use only `promtool check metrics`. 3.x, a major release the
# tests have not been run with, is refused rather than trusted.
PROMETHEUS_MIN_VERSION="2.42"
PROMETHEUS_BELOW_VERSION="3~"
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
  dpkg-dev
  # seccomp-exec (the unit's seccomp filter in tests) links libseccomp;
  # scripts/trace-syscalls.sh records florenced's system calls with strace.
  libseccomp-dev
  strace
  # florenced/tests/readme_rest.rs runs the README's curl commands.
  curl
  # florenced/tests/page.rs drives the service's page in a real browser
  # (Playwright, in .test-venv, over Debian's Chromium).
  chromium
)

log() { printf 'setup: %s\n' "$*"; }

# shellcheck source=scripts/apt-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-common.sh"
# shellcheck source=scripts/system-python.sh
source "$(dirname "${BASH_SOURCE[0]}")/system-python.sh"

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
  # A throwaway venv's pip: Debian has no system pip unless python3-pip is installed.
  "$SYSTEM_PYTHON" -m venv "$tmp/venv"
  "$tmp/venv/bin/python" -m pip download --quiet --disable-pip-version-check "onnxruntime==$ORT_VERSION" \
    --no-deps --only-binary=:all: --platform "$platform" --python-version 3.11 -d "$tmp/wheel"
  local wheel
  wheel="$(ls "$tmp"/wheel/onnxruntime-"$ORT_VERSION"-*.whl)"
  echo "$sha  $wheel" | sha256sum --check --quiet - || {
    log "sha256 of $(basename "$wheel") does not match the pinned $sha"; exit 1;
  }
  mkdir -p "$ort_dir"
  "$SYSTEM_PYTHON" - "$wheel" "$ort_dir" "$ORT_VERSION" <<'PY'
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

# promtool_version_ok VERSION: is VERSION (a package or promtool version) in the accepted range?
promtool_version_ok() {
  dpkg --compare-versions "$1" ge "$PROMETHEUS_MIN_VERSION" &&
    dpkg --compare-versions "$1" lt "$PROMETHEUS_BELOW_VERSION"
}

# The version promtool FILE reports ("promtool, version 2.53.3+ds1 (branch: ...").
# awk reads to the end: leaving early would kill promtool with SIGPIPE, which
# pipefail turns into a failure.
promtool_version() {
  { "$1" --version 2>&1 || true; } | awk '/version/ && v == "" {v = $3} END {print v}'
}

# candidate PACKAGE: the version apt would install, or nothing.
candidate() {
  apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}'
}

install_promtool() {
  local have
  if [ -x "$TOOLS_DIR/promtool" ] && have="$(promtool_version "$TOOLS_DIR/promtool")" &&
    promtool_version_ok "$have"; then
    log "promtool $have present in $TOOLS_DIR"
    return
  fi
  [ -n "$(candidate prometheus)" ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # Debian 13 ships promtool in a package of its own; Debian 12 inside prometheus.
  local package version
  for package in promtool prometheus; do
    version="$(candidate "$package")"
    [ -n "$version" ] && break
  done
  if [ -z "$version" ]; then
    log "neither the promtool nor the prometheus package is known to apt"
    exit 1
  fi
  if ! promtool_version_ok "$version"; then
    log "package $package $version is outside the accepted range (>= $PROMETHEUS_MIN_VERSION, < 3)"
    exit 1
  fi
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  log "fetching promtool from the Debian package $package=$version"
  # As root, apt downloads as its own user, who cannot write into a private
  # temporary folder; it falls back to root anyway, so say so and spare the warning.
  local sandbox=()
  [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
  (cd "$tmp" && apt-get download -q "${sandbox[@]}" "$package=$version" >/dev/null)
  dpkg-deb -x "$tmp/${package}_"*.deb "$tmp/x"
  if [ ! -x "$tmp/x/usr/bin/promtool" ]; then
    log "the package $package=$version has no usr/bin/promtool"
    exit 1
  fi
  have="$(promtool_version "$tmp/x/usr/bin/promtool")"
  if ! promtool_version_ok "$have"; then
    log "promtool of $package=$version says version '$have', outside the accepted range"
    exit 1
  fi
  mkdir -p "$TOOLS_DIR"
  install -m 755 "$tmp/x/usr/bin/promtool" "$TOOLS_DIR/promtool"
  log "promtool $have ($package $version) unpacked into $TOOLS_DIR"
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
