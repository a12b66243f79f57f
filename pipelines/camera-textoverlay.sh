#!/usr/bin/env bash
# Live captions from a camera, drawn on the picture by textoverlay.
#
#   pipelines/camera-textoverlay.sh [MODEL_DIR]
#
# FLORENCE_SOURCE  the camera element (default: v4l2src device=/dev/video0;
#                  Raspberry Pi camera: libcamerasrc)
# FLORENCE_SINK    where the picture goes (default: autovideosink)
# FLORENCE_INTERVAL  minimum ms between two analyses (default 1000)
# FLORENCE_TASK    florencecaption task (default caption)
#
# florencecaption runs in live mode: frames never wait for the model; its
# text_src pad sends each new caption to textoverlay, which keeps showing it
# until the next one (wait-text=false: the picture does not wait for text).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/tests/fixtures/tiny-florence2}
source=${FLORENCE_SOURCE:-v4l2src device=/dev/video0}
sink=${FLORENCE_SINK:-autovideosink}
interval=${FLORENCE_INTERVAL:-1000}
task=${FLORENCE_TASK:-caption}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$root/target/release}
# shellcheck disable=SC2086 # source and sink are pipeline fragments
exec gst-launch-1.0 -e -m \
  $source ! videoconvert ! videoscale ! video/x-raw,width=640,height=480 ! \
  florencecaption name=f model-dir="$model" task="$task" inference-interval="$interval" ! \
  videoconvert ! textoverlay name=o wait-text=false valignment=bottom halignment=center \
    font-desc="Sans 20" shaded-background=true ! videoconvert ! $sink \
  f.text_src ! queue ! o.text_sink
