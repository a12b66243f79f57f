#!/usr/bin/env bash
# Removes the hailo-florence service installed by install.sh.
#   sudo systemd/uninstall.sh [--purge]   (--purge also removes /etc/hailo/hailo-florence.yaml and the user)
set -euo pipefail
purge=0
[ "${1:-}" = --purge ] && purge=1
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root (sudo)" >&2; exit 1; }
systemctl disable --now hailo-florence 2>/dev/null || true
rm -f /etc/systemd/system/hailo-florence.service
systemctl daemon-reload
rm -f /usr/local/bin/florenced
rm -rf /usr/local/lib/florence /usr/local/share/doc/florenced
if [ "$purge" = 1 ]; then
  rm -f /etc/hailo/hailo-florence.yaml
  id -u hailo-florence >/dev/null 2>&1 && userdel hailo-florence
fi
echo "hailo-florence removed (models in /var/lib/hailo-florence kept)"
