#!/usr/bin/env bash
# Removes what systemd/install.sh installed; keeps the configuration
# (/etc/hailo/hailo-florence.yaml) and the models (/var/lib/hailo-florence) unless --purge.
#   sudo systemd/uninstall.sh [--prefix DIR] [--plugin-dir DIR] [--purge]
# --purge also removes the configuration, the models, the cache and logs, and the
# hailo-florence user. DESTDIR=/some/root removes from a staged tree only.
set -euo pipefail
prefix=/usr/local
plugin_dir=""
purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --plugin-dir) plugin_dir=$2; shift 2 ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$prefix" in
  /*) prefix=${prefix%/} ;;
  *) echo "uninstall.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;;
esac
dest=${DESTDIR:-}
dest=${dest%/}
if [ -z "$dest" ]; then
  [ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root (sudo), or set DESTDIR" >&2; exit 1; }
fi
if [ -z "$plugin_dir" ]; then
  plugin_dir=$(pkg-config --variable=pluginsdir gstreamer-1.0 2>/dev/null) ||
    { echo "uninstall.sh: cannot ask pkg-config for GStreamer's plugin directory (--plugin-dir DIR)" >&2; exit 1; }
fi
systemd_running=0
[ -z "$dest" ] && [ -d /run/systemd/system ] && systemd_running=1
if [ "$systemd_running" = 1 ]; then
  systemctl disable --now hailo-florence 2>/dev/null || true
fi
rm -f "$dest/etc/systemd/system/hailo-florence.service" \
  "$dest/etc/systemd/system/hailo-florence.service.d/ip-policy.conf"
rmdir "$dest/etc/systemd/system/hailo-florence.service.d" 2>/dev/null || true
[ "$systemd_running" = 1 ] && systemctl daemon-reload
# Only the link install.sh made: a plugin someone else put there stays.
[ -L "$dest$plugin_dir/libgstflorence.so" ] && rm -f "$dest$plugin_dir/libgstflorence.so"
rm -f "$dest$prefix/bin/florenced"
rm -rf "$dest$prefix/lib/florence" "$dest$prefix/share/florence" "$dest$prefix/share/doc/florenced"
if [ "$purge" = 1 ]; then
  rm -f "$dest/etc/hailo/hailo-florence.yaml" "$dest/etc/hailo/hailo-florence.yaml.new"
  rmdir "$dest/etc/hailo" 2>/dev/null || true
  rm -rf "$dest/var/lib/hailo-florence" "$dest/var/cache/hailo-florence" "$dest/var/log/hailo-florence"
  if [ -z "$dest" ]; then
    id -u hailo-florence >/dev/null 2>&1 && userdel hailo-florence
  else
    echo "DESTDIR=$dest: skipped userdel hailo-florence"
  fi
  echo "hailo-florence purged (configuration, models, cache and logs removed)"
else
  echo "hailo-florence removed; kept /etc/hailo/hailo-florence.yaml and the models in /var/lib/hailo-florence (--purge removes them)"
fi
