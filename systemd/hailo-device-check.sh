#!/bin/sh
# ExecStartPre of hailo-florence.service: when the configuration selects the
# Hailo backend, fail start-up early with the cause if the device node is
# missing (driver not loaded). backend: auto or onnx never needs the device.
# Usage: hailo-device-check.sh CONFIG [DEVICE]
config="${1:-/etc/hailo/hailo-florence.yaml}"
device="${2:-/dev/hailo0}"
backend="${FLORENCED_BACKEND:-$(sed -n 's/^backend:[[:space:]]*\([a-z]*\).*/\1/p' "$config" 2>/dev/null | tail -n 1)}"
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
