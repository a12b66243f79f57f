# Sourced by scripts/setup.sh and scripts/setup-aarch64.sh: running as root,
# and installing the Debian packages of APT_PACKAGES that are missing. The
# sourcing script defines log() (its own prefix) and APT_PACKAGES.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else
    log "need root for: $*"; exit 1
  fi
}

# install_apt WHAT: installs the missing packages of APT_PACKAGES, or says WHAT is present.
install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "$1 present"
    return
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
