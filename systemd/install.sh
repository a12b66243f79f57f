#!/usr/bin/env bash
# Installs florenced as the hailo-florence systemd service, and the GStreamer
# plugin for every user. Running it again upgrades in place.
#   sudo systemd/install.sh [--prefix DIR] [--binary PATH] [--plugin PATH] [--ort-library PATH]
#        [--plugin-dir DIR] [--model-dir DIR] [--model NAME [--variant SUFFIX]]
#        [--allow-from "ADDRESS ..."] [--hailo-bridges DIR] [--no-start]
# --prefix: florenced in DIR/bin, ONNX Runtime, the plugin and the device check in
#   DIR/lib/florence (default /usr/local); the plugin is linked from GStreamer's
#   plugin directory (--plugin-dir, default `pkg-config --variable=pluginsdir gstreamer-1.0`).
# --model pulls NAME (florence-2-base-ft, ... or owner/name) from the Hugging Face Hub into
#   /var/lib/hailo-florence/models/ (cache: /var/lib/hailo-florence/hub) and configures it.
# --allow-from: with a non-loopback `host`, the addresses or prefixes that may connect
#   (the unit's IP policy drop-in, rendered by ip-policy.sh; default: any).
# --hailo-bridges: the Hailo bridge libraries to install in DIR/lib/florence/hailo,
#   where florenced and the plugin look for them (default: what
#   scripts/build-hailo-bridges.sh built for this machine, if anything).
# DESTDIR=/some/root stages the whole tree under that root and touches nothing else
#   (no user, no systemctl); what it skips is printed.
# Build first: cargo build --release --locked (and bash scripts/setup.sh for ONNX Runtime).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
prefix=/usr/local
binary="$root/target/release/florenced"
plugin="$root/target/release/libgstflorence.so"
ort="$root/.ort/lib/libonnxruntime.so"
bridges="$root/target/hailo-bridges/$(uname -m)-unknown-linux-gnu"
plugin_dir=""
model_dir=""
model=""
variant=""
start=1
allow_from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --plugin) plugin=$2; shift 2 ;;
    --ort-library) ort=$2; shift 2 ;;
    --hailo-bridges) bridges=$2; shift 2 ;;
    --plugin-dir) plugin_dir=$2; shift 2 ;;
    --model-dir) model_dir=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --variant) variant=$2; shift 2 ;;
    --allow-from) allow_from=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$prefix" in
  /*) prefix=${prefix%/} ;;
  *) echo "install.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;;
esac
# The configuration takes the graph suffix: fp16 -> _fp16, fp32 -> "".
case "$variant" in
  ""|fp32) variant="" ;;
  _*) ;;
  *) variant="_$variant" ;;
esac
dest=${DESTDIR:-}
dest=${dest%/}
if [ -z "$dest" ]; then
  [ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo), or set DESTDIR to stage the tree" >&2; exit 1; }
fi
[ -x "$binary" ] || { echo "install.sh: no florenced binary at $binary (cargo build --release --locked)" >&2; exit 1; }
[ -f "$plugin" ] || { echo "install.sh: no GStreamer plugin at $plugin (cargo build --release --locked)" >&2; exit 1; }
[ -e "$ort" ] || { echo "install.sh: no ONNX Runtime library at $ort (bash scripts/setup.sh)" >&2; exit 1; }
if [ -z "$plugin_dir" ]; then
  plugin_dir=$(pkg-config --variable=pluginsdir gstreamer-1.0 2>/dev/null) ||
    { echo "install.sh: cannot ask pkg-config for GStreamer's plugin directory (apt install libgstreamer1.0-dev, or --plugin-dir DIR)" >&2; exit 1; }
fi
lib_dir=$prefix/lib/florence
share_dir=$prefix/share/florence
config=/etc/hailo/hailo-florence.yaml
systemd_running=0
[ -z "$dest" ] && [ -d /run/systemd/system ] && systemd_running=1

if [ "$systemd_running" = 1 ] && systemctl is-active --quiet hailo-florence 2>/dev/null; then
  echo "stopping the running hailo-florence service"
  systemctl stop hailo-florence
fi
if [ -z "$dest" ]; then
  id -u hailo-florence >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin hailo-florence
  # The Hailo device node is usually group-owned; let the service user open it.
  if [ -e /dev/hailo0 ]; then
    group=$(stat -c %G /dev/hailo0)
    [ "$group" != root ] && usermod -a -G "$group" hailo-florence
  fi
fi
install -d -m 0755 "$dest$prefix/bin" "$dest$lib_dir" "$dest$share_dir" "$dest$plugin_dir" \
  "$dest$prefix/share/doc/florenced" "$dest/etc/hailo" "$dest/etc/systemd/system" \
  "$dest/var/lib/hailo-florence" "$dest/var/lib/hailo-florence/models"
install -m 0755 "$binary" "$dest$prefix/bin/florenced"
install -m 0644 "$(readlink -f "$ort")" "$dest$lib_dir/libonnxruntime.so"
install -m 0755 "$here/hailo-device-check.sh" "$dest$lib_dir/hailo-device-check.sh"
install -m 0755 "$here/ip-policy.sh" "$dest$lib_dir/ip-policy.sh"
# The plugin's real file sits beside ONNX Runtime, which it finds there (the
# folder of its real file is searched); GStreamer loads it through the link.
install -m 0644 "$plugin" "$dest$lib_dir/libgstflorence.so"
ln -sfr "$dest$lib_dir/libgstflorence.so" "$dest$plugin_dir/libgstflorence.so"
# The Hailo bridges, one per HailoRT major: loaded only when HailoRT is
# installed; without them backend=auto says where it looked.
if compgen -G "$bridges/libflorence_hailo_hailort*.so" >/dev/null; then
  install -d -m 0755 "$dest$lib_dir/hailo"
  install -m 0644 "$bridges"/libflorence_hailo_hailort*.so "$dest$lib_dir/hailo/"
else
  echo "install.sh: no Hailo bridges in $bridges (bash scripts/build-hailo-bridges.sh builds them): Hailo devices cannot be used" >&2
fi
install -m 0644 "$root/README.md" "$dest$prefix/share/doc/florenced/README.md"
unit=$(mktemp)
new_config=$(mktemp)
trap 'rm -f "$unit" "$new_config"' EXIT
"$here/render-unit.sh" "$prefix" >"$unit"
install -m 0644 "$unit" "$dest/etc/systemd/system/hailo-florence.service"

if [ -n "$model" ]; then
  echo "pulling $model from the Hugging Face Hub"
  model_dir=$("$here/pull-model.sh" --binary "$dest$prefix/bin/florenced" \
    --ort-library "$dest$lib_dir/libonnxruntime.so" \
    --models "$dest/var/lib/hailo-florence/models" --cache "$dest/var/lib/hailo-florence/hub" \
    "$model" "$variant")
  model_dir=${model_dir#"$dest"}
fi
# The default configuration with the choices made here.
sed -e "${model_dir:+s|^model_dir:.*|model_dir: $model_dir|}" \
    -e "${variant:+s|^model_variant: \"\"|model_variant: \"$variant\"|}" \
    "$here/hailo-florence.yaml" >"$new_config"
# An edited configuration is kept: the new default goes beside it. One that is
# still the default this script wrote last time is replaced.
previous_default=$dest$share_dir/hailo-florence.yaml.default
if [ ! -e "$dest$config" ] || cmp -s "$dest$config" "$previous_default" || cmp -s "$dest$config" "$new_config"; then
  install -m 0640 "$new_config" "$dest$config"
  rm -f "$dest$config.new"
  echo "wrote $config"
else
  install -m 0640 "$new_config" "$dest$config.new"
  echo "kept your edited $config; the new default is beside it: $config.new (diff them)"
fi
install -m 0644 "$new_config" "$previous_default"
if [ -z "$dest" ]; then
  for f in "$config" "$config.new"; do
    [ ! -e "$f" ] || chgrp hailo-florence "$f"
  done
fi
# Check the configuration before systemd tries it.
"$dest$prefix/bin/florenced" --config "$dest$config" --print-config >/dev/null
# Which peers may connect, from the configured bind (rerun after changing host).
FLORENCE_DAEMON_BIN="$dest$prefix/bin/florenced" "$here/ip-policy.sh" "$dest$config" "$dest/etc/systemd/system/hailo-florence.service.d/ip-policy.conf" \
  ${allow_from:+--allow "$allow_from"}
echo "installed florenced in $prefix (ONNX Runtime and the plugin in $lib_dir, linked from $plugin_dir)"

if [ -n "$dest" ]; then
  echo "DESTDIR=$dest: staged only; skipped: useradd hailo-florence, chgrp hailo-florence $config, systemctl daemon-reload/enable/start, verify.sh"
elif [ "$systemd_running" = 0 ]; then
  echo "systemd is not running here: skipped systemctl daemon-reload/enable/start; run $prefix/bin/florenced --config $config yourself"
else
  systemctl daemon-reload
  if [ "$start" = 1 ]; then
    systemctl enable --now hailo-florence
    "$here/verify.sh"
  else
    systemctl enable hailo-florence
  fi
fi
