#!/usr/bin/env bash
# Sourced (not run) by scripts/debian-root-check.sh and scripts/deb-apt-check.sh:
# a fresh Debian root made with mmdebstrap from the Debian archive this
# machine's apt uses, cached as a tarball, and what a root needs from the host
# to reach the package registries. The caller defines log and fail, and sets
# RELEASE, VARIANT, BASE_PACKAGES (the packages besides VARIANT's), CACHE (a
# folder of its own per release) and TARBALL_PREFIX (the cached tarball's name
# prefix: tarballs of other prefixes in CACHE are left alone).

MAX_TARBALL_AGE_DAYS=7

# host_apt_sources: "URI SUITE..." for each source of this machine's apt
# (deb822 .sources files and one-line .list entries).
host_apt_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uri = $i; sub(/^URIs:[ \t]*/, "", uri); sub(/[ \t].*/, "", uri) }
          if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
        }
        if (uri != "") print uri, suites }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
}

# find_mirrors: sets MIRROR and SECURITY_MIRROR, the Debian archive and its
# security archive as this machine's apt reaches them (so the root uses the
# registry the host is set up for), unless FLORENCE_DEBIAN_MIRROR /
# FLORENCE_DEBIAN_SECURITY_MIRROR say otherwise.
find_mirrors() {
  local host_codename
  host_codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
  MIRROR="${FLORENCE_DEBIAN_MIRROR:-$(host_apt_sources |
    awk -v c="$host_codename" '{ for (i = 2; i <= NF; i++) if ($i == c) { print $1; exit } }')}"
  SECURITY_MIRROR="${FLORENCE_DEBIAN_SECURITY_MIRROR:-$(host_apt_sources |
    awk -v c="$host_codename-security" '{ for (i = 2; i <= NF; i++) if ($i == c) { print $1; exit } }')}"
  [ -n "$MIRROR" ] && [ -n "$SECURITY_MIRROR" ] ||
    fail "cannot tell this machine's Debian archive from its apt sources (release $host_codename): set FLORENCE_DEBIAN_MIRROR and FLORENCE_DEBIAN_SECURITY_MIRROR"
}

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null && command -v unshare >/dev/null && return
  log "installing mmdebstrap (apt)"
  env DEBIAN_FRONTEND=noninteractive apt-get update -q
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap util-linux
}

# root_tarball: prints the cached tarball of a fresh root, making it when missing
# or old (keyed by release, variant, mirror and package list).
root_tarball() {
  local key tarball
  key="$(printf '%s\n' "$RELEASE" "$VARIANT" "$MIRROR" "${BASE_PACKAGES[@]}" | sha256sum | cut -c1-16)"
  tarball="$CACHE/$TARBALL_PREFIX-$key.tar"
  if [ -f "$tarball" ] && [ -z "$(find "$tarball" -mtime +"$MAX_TARBALL_AGE_DAYS")" ]; then
    log "root of $RELEASE cached in $tarball" >&2
    printf '%s\n' "$tarball"
    return
  fi
  mkdir -p "$CACHE"
  rm -f "$CACHE/$TARBALL_PREFIX"-*.tar "$CACHE/$TARBALL_PREFIX"-*.tar.part
  log "making a fresh $RELEASE root with mmdebstrap ($VARIANT + ${BASE_PACKAGES[*]:-nothing})" >&2
  local sources=(
    "deb $MIRROR $RELEASE main"
    "deb $MIRROR $RELEASE-updates main"
    "deb $SECURITY_MIRROR $RELEASE-security main"
  )
  local include=()
  [ "${#BASE_PACKAGES[@]}" -gt 0 ] && include=("--include=$(IFS=,; echo "${BASE_PACKAGES[*]}")")
  mmdebstrap --quiet --variant="$VARIANT" "${include[@]}" --format=tar \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$RELEASE" "$tarball.part" "${sources[@]}" >&2
  mv "$tarball.part" "$tarball"
  printf '%s\n' "$tarball"
}

# copy_host_network_setup DIR: the registries are reached through the host's
# certificate authorities (its bundle, and its local certificates so that
# update-ca-certificates in the root, a package's trigger, keeps them), its pip
# configuration and its resolver.
copy_host_network_setup() {
  local r="$1"
  mkdir -p "$r/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$r/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
  fi
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$r/etc/pip.conf"
  if [ -d "$HOME/.config/pip" ]; then
    mkdir -p "$r/root/.config"
    cp -r "$HOME/.config/pip" "$r/root/.config/pip"
  fi
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
}

# unmount_under DIR: the mounts below DIR, deepest first. The namespace's mounts
# end with it anyway; this still leaves a process that outlives the checks in the
# root seeing no host folders.
unmount_under() {
  local m
  findmnt -rn -o TARGET | grep "^$1/" | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}
