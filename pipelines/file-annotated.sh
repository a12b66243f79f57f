#!/usr/bin/env bash
# Writes a video file again with Florence-2's detections drawn on it.
#
#   pipelines/file-annotated.sh INPUT OUTPUT.webm [MODEL_DIR]
#
# FLORENCE_RATE  frames per second analysed and written (default 1/1)
# FLORENCE_TASK  florencecaption task (default od)
#
# videorate keeps FLORENCE_RATE frames a second; florencecaption
# (mode=every-frame) analyses each of them and florenceoverlay draws each
# frame's own result on it; VP8 in WebM needs nothing beyond
# gst-plugins-good.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 4,5p "$0"; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
input=$1
output=$2
model=${3:-$root/tests/fixtures/tiny-florence2}
rate=${FLORENCE_RATE:-1/1}
task=${FLORENCE_TASK:-od}
[ -r "$input" ] || { echo "file-annotated.sh: cannot read $input" >&2; exit 1; }
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$root/target/release}
exec gst-launch-1.0 -q \
  filesrc location="$input" ! decodebin ! videoconvert ! videorate ! "video/x-raw,framerate=$rate" ! \
  florencecaption mode=every-frame model-dir="$model" task="$task" ! florenceoverlay ! \
  videoconvert ! vp8enc deadline=1 ! webmmux ! filesink location="$output"
