#!/usr/bin/env bash
# The arm64 (Raspberry Pi 5) Debian package, checked on this amd64 machine:
#   1. scripts/build-deb.sh --arch arm64 packages the cross-build
#      (scripts/cross-aarch64.sh builds it; --profile dev, its default here, is
#      that script's debug build),
#   2. its files: florenced, the plugin and ONNX Runtime are aarch64 ELF files,
#      the first two stripped, their symbols in hailo-florence-dbgsym by build
#      id; every library they need is in a package its Depends names, libc6 at
#      least at the newest GLIBC_ version they use (the arm64 variant lists them
#      by hand: dpkg-shlibdeps cannot read a cross sysroot), and apt resolves
#      them from Debian's arm64 archive (a simulation for an empty system),
#   3. dpkg installs it into a throwaway root (--root, maintainer scripts
#      chrootless, as florenced/tests/deb.rs does for amd64), then under
#      qemu-user, with the arm64 sysroot's libraries (.sysroot-aarch64, which is
#      Debian 12's arm64 GStreamer and GLib):
#      - the package's /usr/bin/florenced run captions a fixture image with the
#        tiny model, token for token, with the package's ONNX Runtime,
#      - the sysroot's gst-inspect-1.0 finds florencecaption through the
#        package's link in its GStreamer plugin directory, and gst-launch-1.0
#        captions one frame with it (the plugin finds the package's ONNX
#        Runtime beside its real file).
# Why not mmdebstrap --arch arm64 and apt: a foreign root runs its maintainer
# scripts and programs through binfmt_misc, which containers like CI's do not
# have (/proc/sys/fs/binfmt_misc is not mounted); qemu is called explicitly.
# Needs bash scripts/setup.sh --aarch64.
#   bash scripts/deb-arm64-check.sh [--profile dev|release]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf 'deb-arm64-check: %s\n' "$*"; }
fail() { log "FAIL: $*"; exit 1; }

profile=dev
case "${1:-}" in
  "") ;;
  --profile) profile="${2:-}" ;;
  *) printf 'usage: %s [--profile dev|release]\n' "$0" >&2; exit 2 ;;
esac
# shellcheck source=scripts/cross-env-aarch64.sh
source "$ROOT/scripts/cross-env-aarch64.sh"
[ -e "$CROSS_SYSROOT/.packages" ] || fail "no arm64 sysroot: run bash scripts/setup.sh --aarch64"

started=$SECONDS
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. The package.
bash scripts/build-deb.sh --arch arm64 --profile "$profile" --no-build --output "$tmp/out" >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log"; fail "build-deb.sh --arch arm64 failed"; }
deb="$(tail -n1 "$tmp/build.log")"
ddeb="$(dirname "$deb")/$(basename "$deb" .deb | sed 's/^hailo-florence_/hailo-florence-dbgsym_/').ddeb"
if [ ! -f "$deb" ] || [ ! -f "$ddeb" ]; then cat "$tmp/build.log"; fail "no .deb and .ddeb from build-deb.sh"; fi
[ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] || fail "$deb: Architecture $(dpkg-deb -f "$deb" Architecture)"
log "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) and $(basename "$ddeb")"

# 2. Its files and Depends.
mkdir -p "$tmp/files" "$tmp/dbgsym"
dpkg-deb -x "$deb" "$tmp/files"
dpkg-deb -x "$ddeb" "$tmp/dbgsym"
elves=(usr/bin/florenced usr/lib/florence/libgstflorence.so usr/lib/florence/libonnxruntime.so)
for f in "${elves[@]}"; do
  what="$(file -b "$tmp/files/$f")"
  [[ "$what" == ELF\ 64-bit\ LSB*ARM\ aarch64* ]] || fail "$f is not an aarch64 ELF file: $what"
done
for f in usr/bin/florenced usr/lib/florence/libgstflorence.so; do
  what="$(file -b "$tmp/files/$f")"
  [[ "$what" == *", stripped"* ]] || fail "$f is not stripped: $what"
  id="$(readelf -n "$tmp/files/$f" | awk '/Build ID:/ { print $3 }')"
  [ -n "$id" ] || fail "$f has no build id"
  debug="usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
  [ -f "$tmp/dbgsym/$debug" ] || fail "no $debug (symbols of $f) in $(basename "$ddeb")"
  [[ "$(file -b "$tmp/dbgsym/$debug")" == *"ARM aarch64"* ]] || fail "$debug is not aarch64"
done
log "florenced, libgstflorence.so: aarch64, stripped, symbols in the dbgsym package; libonnxruntime.so: aarch64"
# Package names are the same on every architecture (multiarch), so the host's
# dpkg database names the package of each library the arm64 files need (in
# its own multiarch folder: not the cross toolchain's copies).
host_multiarch="$(gcc -dumpmachine)"
depends="$(dpkg-deb -f "$deb" Depends)"
for soname in $(for f in "${elves[@]}"; do readelf -d "$tmp/files/$f"; done |
  sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u); do
  case "$soname" in
    ld-linux-aarch64.so.1) package=libc6 ;;
    *)
      package="$(dpkg -S "*/$host_multiarch/$soname" 2>/dev/null | head -n1 | cut -d: -f1)"
      [ -n "$package" ] || fail "no package of this machine has $soname (needed by the arm64 files)"
      ;;
  esac
  # libgcc-s1 is required by every Debian system (cargo-deb leaves it out too).
  [ "$package" = libgcc-s1 ] && continue
  # Depends' package names, one a line (versions and alternatives' rest cut).
  sed 's/, */\n/g' <<<"$depends" | cut -d' ' -f1 | grep -Fqx "$package" || fail "$soname ($package) is not in Depends: $depends"
done
# The C library version: the newest GLIBC_ symbol version the files use.
glibc_needed="$(for f in "${elves[@]}"; do aarch64-linux-gnu-objdump -T "$tmp/files/$f"; done |
  grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n1)"
glibc_depends="$(sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p' <<<"$depends")"
if [ -z "$glibc_depends" ] || ! dpkg --compare-versions "$glibc_depends" ge "$glibc_needed"; then
  fail "the arm64 files use GLIBC_$glibc_needed; Depends has libc6 (>= ${glibc_depends:-none})"
fi
log "every library the arm64 files need is in Depends (libc6 >= GLIBC_$glibc_needed): $depends"
# apt resolves those Depends from the Debian archive this machine's apt reads
# (its arm64 lists, which setup.sh --aarch64 enables), as for an empty arm64
# system: a simulation (-s), nothing is installed.
: >"$tmp/empty-status"
apt-get install -s -q -o Dir::State::status="$tmp/empty-status" -o Debug::NoLocking=1 \
  -o APT::Architecture=arm64 -o APT::Architectures::=arm64 "$deb" >"$tmp/apt.log" 2>&1 ||
  { cat "$tmp/apt.log"; fail "apt cannot install $(basename "$deb") on an empty arm64 system"; }
grep -q '^Inst hailo-florence ' "$tmp/apt.log" || { cat "$tmp/apt.log"; fail "apt's simulation installs no hailo-florence"; }
log "apt resolves its Depends from the arm64 archive ($(grep -c '^Inst ' "$tmp/apt.log") packages for an empty system)"

# 3. Installed into a throwaway root by dpkg (arm64 as its foreign architecture).
# The postinst asks the installed florenced for the configured bind address
# (ip-policy.sh, which runs FLORENCE_DAEMON_BIN when set): that is the arm64
# florenced under qemu.
cross_launcher
target="$tmp/root"
printf '#!/bin/sh\nexec %s %q "$@"\n' "$(printf '%q ' "${CROSS_LAUNCHER[@]}")" \
  "$target/usr/bin/florenced" >"$tmp/florenced-qemu"
chmod +x "$tmp/florenced-qemu"
mkdir -p "$target/var/lib/dpkg/info" "$target/var/lib/dpkg/updates" "$target/etc"
: >"$target/var/lib/dpkg/status"
echo arm64 >"$target/var/lib/dpkg/arch"
FLORENCE_DAEMON_BIN="$tmp/florenced-qemu" dpkg --root="$target" --force-script-chrootless --force-not-root --force-depends --log=/dev/null \
  --install "$deb" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "dpkg --install failed"; }
grep -q 'install ok installed' <(dpkg --root="$target" --status hailo-florence) || fail "not installed"
grep -q '^hailo-florence:' "$target/etc/passwd" || fail "the postinst made no hailo-florence user"
grep -q 'IPAddressAllow=localhost' "$target/etc/systemd/system/hailo-florence.service.d/ip-policy.conf" ||
  fail "the postinst wrote no loopback IP policy"
log "installed into $target with dpkg --root"

emulated_started=$SECONDS
log "the package's florenced run under qemu-aarch64 (its own ONNX Runtime)"
python3 scripts/check-run-fixtures.py --case scene_640x480 "<CAPTION>" beam3 \
  --launcher "$(printf '%q ' "${CROSS_LAUNCHER[@]}")" "$target/usr/bin/florenced" ||
  fail "the installed florenced run"

plugins="$target/usr/lib/aarch64-linux-gnu/gstreamer-1.0"
# No fork under qemu-user (it would exec gst-plugin-scanner without qemu), a
# registry of its own, and only the sysroot's and the package's plugins.
gst_env=(env GST_REGISTRY_FORK=no GST_REGISTRY_1_0="$tmp/registry.bin"
  GST_PLUGIN_SYSTEM_PATH_1_0="$CROSS_SYSROOT/usr/lib/aarch64-linux-gnu/gstreamer-1.0"
  GST_PLUGIN_PATH_1_0="$plugins")
inspect="$("${gst_env[@]}" "${CROSS_LAUNCHER[@]}" "$CROSS_SYSROOT/usr/bin/gst-inspect-1.0" florencecaption)" ||
  fail "gst-inspect-1.0 florencecaption: the plugin did not load"
grep -q "Filename *$plugins/libgstflorence.so" <<<"$inspect" || fail "florencecaption not from the package: $inspect"
log "gst-inspect-1.0 florencecaption: $(grep -m1 'Filename' <<<"$inspect" | xargs)"

want="$(fixture_frame "$tmp")"
"${gst_env[@]}" "${CROSS_LAUNCHER[@]}" "$CROSS_SYSROOT/usr/bin/gst-launch-1.0" -q \
  filesrc location="$tmp/frame.rgb" blocksize=$((640 * 480 * 3)) ! \
  video/x-raw,format=RGB,width=640,height=480,framerate=0/1 ! \
  florencecaption name=f mode=every-frame model-dir=tests/fixtures/tiny-florence2 threads=1 ! fakesink \
  f.text_src ! queue ! filesink location="$tmp/caption.txt" || fail "gst-launch-1.0 with the package's plugin"
got="$(cat "$tmp/caption.txt")"
[ "$got" = "$want" ] || fail "the package's plugin captioned '$got', recorded '$want'"
log "gst-launch-1.0 with the package's plugin: '$got'"
log "passed: emulated checks $((SECONDS - emulated_started)) s, total $((SECONDS - started)) s"
