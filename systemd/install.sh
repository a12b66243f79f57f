#!/usr/bin/env bash
# Installs florenced as the hailo-florence systemd service.
#   sudo systemd/install.sh [--binary PATH] [--ort-library PATH] [--model-dir DIR] [--model NAME [--variant SUFFIX]] [--no-start]
# --model pulls NAME (florence-2-base-ft, ... or owner/name) from the Hugging Face Hub into
# /var/lib/hailo-florence/models/ (cache: /var/lib/hailo-florence/hub) and configures it.
# Build first: cargo build --release --locked (and bash scripts/setup.sh for ONNX Runtime).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
binary="$root/target/release/florenced"
ort="$root/.ort/lib/libonnxruntime.so"
model_dir=""
model=""
variant=""
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --ort-library) ort=$2; shift 2 ;;
    --model-dir) model_dir=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --variant) variant=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# The configuration takes the graph suffix: fp16 -> _fp16, fp32 -> "".
case "$variant" in
  ""|fp32) variant="" ;;
  _*) ;;
  *) variant="_$variant" ;;
esac
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
[ -x "$binary" ] || { echo "install.sh: no florenced binary at $binary (cargo build --release --locked)" >&2; exit 1; }
[ -e "$ort" ] || { echo "install.sh: no ONNX Runtime library at $ort (bash scripts/setup.sh)" >&2; exit 1; }

if systemctl is-active --quiet hailo-florence 2>/dev/null; then
  echo "stopping the running hailo-florence service"
  systemctl stop hailo-florence
fi
id -u hailo-florence >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin hailo-florence
# The Hailo device node is usually group-owned; let the service user open it.
if [ -e /dev/hailo0 ]; then
  group=$(stat -c %G /dev/hailo0)
  [ "$group" != root ] && usermod -a -G "$group" hailo-florence
fi
install -d -m 0755 /var/lib/hailo-florence /var/lib/hailo-florence/models /etc/hailo /usr/local/lib/florence
install -m 0755 "$binary" /usr/local/bin/florenced
install -m 0644 "$(readlink -f "$ort")" /usr/local/lib/florence/libonnxruntime.so
install -m 0755 "$here/hailo-device-check.sh" /usr/local/lib/florence/hailo-device-check.sh
if [ -n "$model" ]; then
  echo "pulling $model from the Hugging Face Hub"
  model_dir=$("$here/pull-model.sh" --binary /usr/local/bin/florenced \
    --ort-library /usr/local/lib/florence/libonnxruntime.so "$model" "$variant")
fi
if [ ! -e /etc/hailo/hailo-florence.yaml ]; then
  install -m 0640 -g hailo-florence "$here/hailo-florence.yaml" /etc/hailo/hailo-florence.yaml
  if [ -n "$model_dir" ]; then
    sed -i "s|^model_dir:.*|model_dir: $model_dir|" /etc/hailo/hailo-florence.yaml
  fi
  if [ -n "$variant" ]; then
    sed -i "s|^model_variant:.*|model_variant: \"$variant\"|" /etc/hailo/hailo-florence.yaml
  fi
  echo "wrote /etc/hailo/hailo-florence.yaml"
else
  echo "kept the existing /etc/hailo/hailo-florence.yaml"
  if [ -n "$model" ]; then
    echo "the model is in $model_dir: set model_dir (and model_variant) there to use it"
  fi
fi
# Check the configuration before systemd tries it.
/usr/local/bin/florenced --config /etc/hailo/hailo-florence.yaml --print-config >/dev/null
install -d /usr/local/share/doc/florenced
install -m 0644 "$root/README.md" /usr/local/share/doc/florenced/README.md
install -m 0644 "$here/hailo-florence.service" /etc/systemd/system/hailo-florence.service
systemctl daemon-reload
if [ "$start" = 1 ]; then
  systemctl enable --now hailo-florence
  "$here/verify.sh"
else
  systemctl enable hailo-florence
fi
