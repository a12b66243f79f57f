#!/usr/bin/env bash
# debian-root-check.sh RELEASE [COMMIT]: the README's set-up and build, and a
# representative part of the test suite, in a fresh Debian root of RELEASE
# (bookworm = Debian 12 / Raspberry Pi OS bookworm, trixie = Debian 13 /
# Raspberry Pi OS trixie), made with mmdebstrap from Debian's package registry.
#
# The root has what the README says a user starts with: Debian's `important`
# packages, git, build-essential, curl and ca-certificates, and Rust from rustup
# (the host's rustup toolchains, mounted read-only, with a cargo home of the
# root's own holding only rustup's proxies: no cargo-deb, nothing installed).
# No python3-pip. In it, on a clean copy of COMMIT (default HEAD; `git archive`,
# none of the working tree's build products):
#   bash scripts/setup.sh
#   cargo build --release --locked
#   cargo test --release: the element's pipelines and element tests, the Python
#     example (python3-gi), `florenced run` (cli), the REST contract (http,
#     inputs) and /metrics checked by promtool (observability). Not requests.rs:
#     its an_over_limit_length_is_refused_from_the_header races the daemon's
#     early 413 (seen here: ENOTCONN on the client's shutdown, release build).
#   scripts/check-run-fixtures.py on the release florenced
# The tests run on the release build the README's command made, so only one
# profile is compiled.
#
# The registries are reached here through the host's certificate bundle and pip
# configuration, so both are copied into the root.
#
# Cached in $FLORENCE_ROOT_CACHE (default /var/cache/florence-debian-root)/RELEASE,
# so a second run on the same machine is fast: the mmdebstrap root as a tarball
# (keyed by release, variant and package list; made again after 7 days), and the
# downloads (apt's .debs, cargo's registry), cargo-deb's build and
# the checkout's target/. Every run starts from a new copy of the root tarball
# and runs the whole set-up in it. Needs root (mmdebstrap, chroot, mounts). The
# copy of the root is a tmpfs (in memory, 8 GiB at most, about 3 GiB used) and it
# and every other mount live in a private mount namespace, so they end with the
# script however it ends; nothing but the caches stays on disk.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'debian-root-check: %s\n' "$*"; }
fail() { log "$*"; exit 1; }

RELEASE="${1:-}"
COMMIT="${2:-HEAD}"
case "$RELEASE" in
  bookworm | trixie) ;;
  *) printf 'usage: %s bookworm|trixie [COMMIT]\n' "$0" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap, chroot and mounts)"

# shellcheck source=scripts/debian-root-lib.sh
source "$ROOT/scripts/debian-root-lib.sh"
find_mirrors
VARIANT="important"
# What the README says a user has besides Debian itself (Rust comes from rustup).
BASE_PACKAGES=(git build-essential curl ca-certificates)
CACHE="${FLORENCE_ROOT_CACHE:-/var/cache/florence-debian-root}/$RELEASE"
TARBALL_PREFIX=root
ROOT_TMPFS_SIZE=8g
HOST_RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
HOST_CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
# Inside the root.
CHECKOUT=/root/florence
GST_TESTS=(pipelines element element_inputs element_meta element_regions element_settings element_stream python_example)
FLORENCED_TESTS=(cli http inputs observability requests)

# The start, shared with the part that runs in the mount namespace.
export FLORENCE_ROOT_T0="${FLORENCE_ROOT_T0:-$(date +%s)}"
phase() {
  log "$1 ($(($(date +%s) - FLORENCE_ROOT_T0)) s since the start)"
}

# prepare_root DIR: what the root needs from the host, and the checkout.
prepare_root() {
  local r="$1"
  copy_host_network_setup "$r"
  # Rust as a rustup user has it: the toolchains (mounted read-only at
  # /root/.rustup) and a cargo home whose bin/ holds rustup and its proxies only.
  mkdir -p "$r/root/.rustup" "$r/root/.cargo/bin" "$r/root/.cargo/registry"
  cp "$HOST_CARGO_BIN/rustup" "$r/root/.cargo/bin/rustup"
  local f
  for f in "$HOST_CARGO_BIN"/*; do
    if [ "$f" -ef "$HOST_CARGO_BIN/rustup" ] && [ "$(basename "$f")" != rustup ]; then
      ln -s rustup "$r/root/.cargo/bin/$(basename "$f")"
    fi
  done
  mkdir -p "$r$CHECKOUT/target"
  git -C "$ROOT" archive --format=tar "$COMMIT" | tar -x -C "$r$CHECKOUT"
  mkdir -p "$CACHE/apt-archives/partial" "$CACHE/cargo-registry" \
    "$CACHE/cargo-install-target" "$CACHE/target"
  mkdir -p "$r/var/cache/cargo-install-target"
}

# The commands run in the root, as root (a user with sudo runs the same).
in_root_script() {
  cat <<EOF
set -euo pipefail
cd $CHECKOUT
step() { printf '\ndebian-root-check: [%s] %s\n' "\$(date -u +%H:%M:%S)" "\$*"; }
. /etc/os-release
step "\$PRETTY_NAME; \$(rustc --version); python3: \$(command -v python3 || echo none); pip: \$(python3 -m pip --version 2>/dev/null || echo none)"
step "bash scripts/setup.sh"
# cargo install builds cargo-deb in a target folder kept between runs (a cache only).
CARGO_TARGET_DIR=/var/cache/cargo-install-target bash scripts/setup.sh
step "GStreamer \$(pkg-config --modversion gstreamer-1.0), \$(python3 --version) (system pip: \$(python3 -m pip --version 2>/dev/null || echo none)), \$(.tools/bin/promtool --version | head -1)"
step "cargo build --release --locked"
cargo build --release --locked 2>&1 | tee /tmp/build.log
if grep -n 'deprecated' /tmp/build.log; then step "the build warns of deprecated API (above)"; exit 1; fi
step "cargo test --release: gst-florence ${GST_TESTS[*]}"
cargo test --release --locked -p gst-florence $(printf -- '--test %s ' "${GST_TESTS[@]}")
step "florencecaption on GStreamer \$(pkg-config --modversion gstreamer-1.0): no deprecation or critical warning"
# G_ENABLE_DIAGNOSTIC makes GObject warn of deprecated properties and signals.
G_ENABLE_DIAGNOSTIC=1 GST_DEBUG=2 GST_DEBUG_NO_COLOR=1 GST_PLUGIN_PATH=target/release \
  gst-launch-1.0 -q videotestsrc num-buffers=2 ! video/x-raw,width=320,height=240 ! videoconvert ! \
  florencecaption model-dir=tests/fixtures/tiny-florence2 mode=every-frame ! fakesink 2>/tmp/gst.log
if grep -Ei 'critical|deprecat' /tmp/gst.log; then step "GStreamer warned (above)"; exit 1; fi
step "cargo test --release: florenced ${FLORENCED_TESTS[*]}"
cargo test --release --locked -p florenced $(printf -- '--test %s ' "${FLORENCED_TESTS[@]}")
step "scripts/check-run-fixtures.py target/release/florenced"
python3 scripts/check-run-fixtures.py target/release/florenced
step "all passed"
EOF
}

# inside ROOTDIR TARBALL: in the private mount namespace: the root unpacked into
# a tmpfs at ROOTDIR, the mounts it needs, then the checks in the chroot.
inside() {
  local r="$1" tarball="$2"
  INSIDE_ROOT="$r"
  trap 'unmount_under "$INSIDE_ROOT"' EXIT
  # The root lives in memory (about 3 GB used): the machine's disk is shared by
  # parallel builds, and nothing of the root is left behind however the run ends.
  mount -t tmpfs -o "size=$ROOT_TMPFS_SIZE,mode=755" florence-root "$r"
  tar -xpf "$tarball" -C "$r"
  prepare_root "$r"
  phase "root unpacked into a tmpfs at $r; set-up, build and tests in it"
  mount -t proc proc "$r/proc"
  mount --rbind /sys "$r/sys"
  mount --rbind /dev "$r/dev"
  mount -t tmpfs -o mode=1777,size=2g tmpfs "$r/dev/shm"
  mount --bind -o ro "$HOST_RUSTUP_HOME" "$r/root/.rustup"
  mount --bind -o remount,ro,bind "$r/root/.rustup"
  mount --bind "$CACHE/apt-archives" "$r/var/cache/apt/archives"
  mount --bind "$CACHE/cargo-registry" "$r/root/.cargo/registry"
  mount --bind "$CACHE/cargo-install-target" "$r/var/cache/cargo-install-target"
  mount --bind "$CACHE/target" "$r$CHECKOUT/target"
  chroot "$r" /usr/bin/env -i HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8 \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CI="${CI:-}" /bin/bash -c "$(in_root_script)"
}

if [ "${FLORENCE_ROOT_INSIDE:-}" = 1 ]; then
  inside "$3" "$4"
  exit
fi

ensure_mmdebstrap
phase "root for $RELEASE"
tarball="$(root_tarball)"
# An empty mount point here; the tmpfs on it exists only in the namespace.
WORK="$(mktemp -d "/var/tmp/florence-root-$RELEASE.XXXXXX")"
trap 'rmdir "$WORK"' EXIT
FLORENCE_ROOT_INSIDE=1 unshare --mount --propagation private -- \
  bash "${BASH_SOURCE[0]}" "$RELEASE" "$COMMIT" "$WORK" "$tarball"
phase "$RELEASE: set-up, build and tests passed"
