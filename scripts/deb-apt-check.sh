#!/usr/bin/env bash
# deb-apt-check.sh RELEASE DEB: installs the package DEB with apt into a fresh
# Debian root of RELEASE (bookworm = Debian 12, trixie = Debian 13), which proves
# its Depends resolve there from Debian's archive alone (HailoRT, a Recommends,
# is not in Debian: apt installs without it), then in that root:
#   florenced run (the installed /usr/bin/florenced and its ONNX Runtime) on one
#     fixture case of the tiny model, token for token (scripts/check-run-fixtures.py
#     on the host, florenced through chroot),
#   gst-inspect-1.0 florencecaption (gstreamer1.0-tools added for it: the plugin
#     from GStreamer's system directory),
#   apt purge: the package's files, configuration and user data are gone.
# The root is mmdebstrap's `apt` variant (essential packages and apt, nothing
# else), cached as a tarball in $FLORENCE_ROOT_CACHE (default
# /var/cache/florence-debian-root)/RELEASE with apt's downloads; it is unpacked
# into a tmpfs in a private mount namespace, so nothing of it stays behind.
# Needs root (mmdebstrap, chroot, mounts). Takes about a minute with the cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'deb-apt-check: %s\n' "$*"; }
fail() { log "$*"; exit 1; }

RELEASE="${1:-}"
DEB="${2:-}"
case "$RELEASE" in
  bookworm | trixie) ;;
  *) printf 'usage: %s bookworm|trixie DEB\n' "$0" >&2; exit 2 ;;
esac
[ -f "$DEB" ] || fail "no package file '$DEB' (scripts/build-deb.sh makes it)"
DEB="$(realpath "$DEB")"
[ "$(dpkg-deb -f "$DEB" Architecture)" = "$(dpkg --print-architecture)" ] ||
  fail "$DEB is for $(dpkg-deb -f "$DEB" Architecture), this machine is $(dpkg --print-architecture)"
[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap, chroot and mounts)"

# shellcheck source=scripts/debian-root-lib.sh
source "$ROOT/scripts/debian-root-lib.sh"
find_mirrors
VARIANT="apt"
BASE_PACKAGES=()
CACHE="${FLORENCE_ROOT_CACHE:-/var/cache/florence-debian-root}/$RELEASE"
TARBALL_PREFIX=deb-root
FIXTURES="$ROOT/tests/fixtures"
CASE=(scene_640x480 "<CAPTION>" beam3)

# in_root: a command in the root, with a clean environment.
in_root() {
  chroot "$INSIDE_ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# inside ROOTDIR TARBALL: in the private mount namespace.
inside() {
  local r="$1" tarball="$2" deb_name
  INSIDE_ROOT="$r"
  trap 'unmount_under "$INSIDE_ROOT"' EXIT
  mount -t tmpfs -o size=4g,mode=755 florence-deb-root "$r"
  tar -xpf "$tarball" -C "$r"
  copy_host_network_setup "$r"
  deb_name="$(basename "$DEB")"
  cp "$DEB" "$r/tmp/$deb_name"
  mount -t proc proc "$r/proc"
  mount --rbind /dev "$r/dev"
  mkdir -p "$CACHE/apt-archives/partial"
  mount --bind "$CACHE/apt-archives" "$r/var/cache/apt/archives"
  # The fixtures at their host path, so the host's check script names them.
  mkdir -p "$r$FIXTURES"
  mount --bind -o ro "$FIXTURES" "$r$FIXTURES"

  log "$(. "$r/etc/os-release" && echo "$PRETTY_NAME"): apt install ./$deb_name"
  in_root apt-get update -q >/dev/null
  in_root apt-get install -y -q "/tmp/$deb_name" >"$r/tmp/apt.log" || { cat "$r/tmp/apt.log"; fail "apt install failed"; }
  grep -E '^(The following|  |Setting up hailo-florence|hailo-florence:)' "$r/tmp/apt.log" || true
  in_root dpkg-query -W -f '${Status} ${Version}\n' hailo-florence | grep -q '^install ok installed' ||
    fail "hailo-florence is not installed"
  if in_root dpkg-query -W -f '${Status}' hailort 2>/dev/null | grep -q 'install ok installed'; then
    fail "hailort got installed (it is not in Debian)"
  fi
  log "Depends: $(in_root dpkg-query -W -f '${Depends}' hailo-florence)"

  log "florenced run (installed) on ${CASE[*]}"
  python3 "$ROOT/scripts/check-run-fixtures.py" --case "${CASE[@]}" \
    --launcher "chroot $r /usr/bin/env -i PATH=/usr/bin:/bin" /usr/bin/florenced

  # Hailo: the package's bridges are found; without HailoRT the reason is the
  # machine's (no HailoRT library), never the build's.
  local hailo
  hailo="$(in_root /usr/bin/florenced run --backend hailo --model-dir "$FIXTURES/tiny-florence2" "$FIXTURES/images/scene_640x480.png" 2>&1 || true)"
  grep -q 'no HailoRT library on this machine' <<<"$hailo" ||
    fail "florenced run --backend hailo does not name the missing HailoRT library: $hailo"
  log "backend hailo without HailoRT: $(grep -o 'no HailoRT library on this machine' <<<"$hailo")"

  log "gst-inspect-1.0 florencecaption (gstreamer1.0-tools)"
  in_root apt-get install -y -q --no-install-recommends gstreamer1.0-tools >/dev/null
  local inspect
  inspect="$(in_root gst-inspect-1.0 florencecaption)" || fail "gst-inspect-1.0 does not find florencecaption"
  grep -q 'Filename .*/gstreamer-1.0/libgstflorence.so' <<<"$inspect" ||
    fail "florencecaption does not come from GStreamer's system directory: $inspect"

  log "apt purge hailo-florence"
  in_root apt-get purge -y -q hailo-florence >/dev/null
  local left
  for left in /usr/bin/florenced /usr/lib/florence /etc/hailo/hailo-florence.yaml /var/lib/hailo-florence; do
    [ ! -e "$r$left" ] || fail "$left is left after purge"
  done
}

if [ "${FLORENCE_ROOT_INSIDE:-}" = 1 ]; then
  inside "$3" "$4"
  exit
fi

started=$SECONDS
ensure_mmdebstrap
tarball="$(root_tarball)"
WORK="$(mktemp -d "/var/tmp/florence-deb-root-$RELEASE.XXXXXX")"
trap 'rmdir "$WORK"' EXIT
FLORENCE_ROOT_INSIDE=1 unshare --mount --propagation private -- \
  bash "${BASH_SOURCE[0]}" "$RELEASE" "$DEB" "$WORK" "$tarball"
log "$RELEASE: $(basename "$DEB") installs, runs and purges ($((SECONDS - started)) s)"
