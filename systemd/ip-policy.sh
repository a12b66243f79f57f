#!/bin/sh
# Renders hailo-florence.service's IP address policy from the configured bind
# address, as a drop-in (the unit itself cannot know `host`):
#   ip-policy.sh CONFIG OUTPUT [--allow "ADDRESS ..."]
# e.g. ip-policy.sh /etc/hailo/hailo-florence.yaml \
#        /etc/systemd/system/hailo-florence.service.d/ip-policy.conf
# - host on loopback (127.0.0.0/8, ::1, localhost; the default): only localhost
#   peers (IPAddressDeny=any, IPAddressAllow=localhost).
# - any other host with --allow: localhost and the listed addresses or prefixes
#   (e.g. "192.168.1.0/24 fd00::/8"; systemd's keywords link-local and
#   multicast too); without --allow: every address, as the bind asks.
# `host` is what florenced itself makes of CONFIG and FLORENCED_* (so
# FLORENCED_HOST overrides the file's): its --print-config; florenced is the one
# installed beside this script (PREFIX/lib/florence/ -> PREFIX/bin/florenced)
# unless FLORENCE_DAEMON_BIN names one. Run it again (then `systemctl daemon-reload`
# and restart) after changing `host`.
set -eu
usage() { echo "usage: ip-policy.sh CONFIG OUTPUT [--allow \"ADDRESS ...\"]" >&2; exit 2; }
[ $# -ge 2 ] || usage
config=$1
output=$2
shift 2
allow=""
while [ $# -gt 0 ]; do
  case "$1" in
    --allow) [ $# -ge 2 ] || usage; allow=$2; shift 2 ;;
    *) usage ;;
  esac
done
[ -r "$config" ] || { echo "ip-policy.sh: cannot read $config" >&2; exit 1; }
for a in $allow; do
  # Only address characters reach the unit file (no spaces, newlines, quotes).
  case "$a" in
    link-local|multicast|localhost) ;;
    *[!0-9A-Fa-f.:/]*|"") echo "ip-policy.sh: --allow: $a is not an address or prefix" >&2; exit 2 ;;
  esac
done
florenced="${FLORENCE_DAEMON_BIN:-$(dirname "$0")/../../bin/florenced}"
effective=$("$florenced" --config "$config" --print-config)
# --print-config writes one top-level `host: VALUE`, quoted where YAML needs it ('::1').
host=$(printf '%s\n' "$effective" | sed -n "s/^host: //p" | sed "s/^'\(.*\)'\$/\1/")
case "$host" in
  127.*|::1|"[::1]"|localhost) policy=loopback ;;
  *) policy=network ;;
esac
if [ "$policy" = loopback ] && [ -n "$allow" ]; then
  echo "ip-policy.sh: host $host is loopback: only localhost can connect, --allow ignored" >&2
fi

mkdir -p "$(dirname "$output")"
tmp="$output.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
  echo "# Rendered by ip-policy.sh from $config (host: $host); run it again after changing host."
  echo "[Service]"
  if [ "$policy" = loopback ]; then
    echo "# florenced listens on loopback: no other peer can reach it."
    echo "IPAddressDeny=any"
    echo "IPAddressAllow=localhost"
  elif [ -n "$allow" ]; then
    echo "# Only localhost and the addresses given to ip-policy.sh --allow."
    echo "IPAddressDeny=any"
    echo "IPAddressAllow=localhost $(echo $allow)"
  else
    echo "# host $host serves every address (ip-policy.sh --allow narrows it)."
    echo "IPAddressDeny="
    echo "IPAddressAllow="
  fi
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$output"
trap - EXIT
