#!/usr/bin/env bash
# Live object detection from a camera, the boxes and labels drawn on the
# picture by florenceoverlay.
#
#   pipelines/camera-detections.sh [MODEL_DIR]
#
# FLORENCE_SOURCE  the camera element (default: v4l2src device=/dev/video0;
#                  Raspberry Pi camera: libcamerasrc)
# FLORENCE_SINK    where the picture goes (default: autovideosink)
# FLORENCE_INTERVAL  minimum ms between two analyses (default 1000)
# FLORENCE_TASK    florencecaption task (default od; any region task, or a
#                  caption, drawn as text along the bottom)
#
# florencecaption runs in live mode: frames never wait for the model, and
# every frame carries the newest result, which florenceoverlay draws until
# the next one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/tests/fixtures/tiny-florence2}
source=${FLORENCE_SOURCE:-v4l2src device=/dev/video0}
sink=${FLORENCE_SINK:-autovideosink}
interval=${FLORENCE_INTERVAL:-1000}
task=${FLORENCE_TASK:-od}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$root/target/release}
# shellcheck disable=SC2086 # source and sink are pipeline fragments
exec gst-launch-1.0 -e -m \
  $source ! videoconvert ! videoscale ! video/x-raw,width=640,height=480 ! \
  florencecaption model-dir="$model" task="$task" inference-interval="$interval" ! \
  florenceoverlay ! videoconvert ! $sink
