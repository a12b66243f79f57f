#!/bin/sh
# ExecStartPre of hailo-florence.service: when the configuration selects the
# Hailo backend, fail start-up early with the cause if the device node is
# missing (driver not loaded). backend: auto or onnx never needs the device.
# Usage: hailo-device-check.sh CONFIG [DEVICE]
# The backend is what florenced itself makes of CONFIG and FLORENCED_* (its
# --print-config); florenced is the one installed beside this script
# (PREFIX/lib/florence/ -> PREFIX/bin/florenced) unless FLORENCE_DAEMON_BIN names one.
set -eu
config="${1:-/etc/hailo/hailo-florence.yaml}"
device="${2:-/dev/hailo0}"
florenced="${FLORENCE_DAEMON_BIN:-$(dirname "$0")/../../bin/florenced}"
effective=$("$florenced" --config "$config" --print-config)
backend=$(printf '%s\n' "$effective" | sed -n 's/^backend: //p')
[ "$backend" = hailo ] || exit 0
if [ ! -c "$device" ]; then
    echo "backend: hailo, but $device does not exist: install and load the hailort PCIe driver (hailort-pcie-driver), or set backend: auto" >&2
    exit 1
fi
if [ ! -r "$device" ] || [ ! -w "$device" ]; then
    echo "backend: hailo, but $device is not readable and writable by $(id -un)" >&2
    exit 1
fi
exit 0
