#!/usr/bin/env bash
# Captions a video file offline into an .srt subtitle file.
#
#   pipelines/file-to-srt.sh INPUT OUTPUT.srt [MODEL_DIR]
#
# FLORENCE_RATE  how often to caption, as a frame rate (default 1/2: every 2 s)
# FLORENCE_TASK  florencecaption task (default caption)
#
# videorate keeps one frame per period; florencecaption (mode=every-frame)
# analyses each of them, and its text_src pad gives one utf8 buffer per frame,
# timestamped to it and lasting the period, which srtenc writes as an entry.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 3,4p "$0"; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
input=$1
output=$2
model=${3:-$root/tests/fixtures/tiny-florence2}
rate=${FLORENCE_RATE:-1/2}
task=${FLORENCE_TASK:-caption}
[ -r "$input" ] || { echo "file-to-srt.sh: cannot read $input" >&2; exit 1; }
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$root/target/release}
exec gst-launch-1.0 -q \
  filesrc location="$input" ! decodebin ! videoconvert ! videorate ! "video/x-raw,framerate=$rate" ! \
  florencecaption name=f mode=every-frame model-dir="$model" task="$task" ! fakesink sync=false \
  f.text_src ! queue ! srtenc ! filesink location="$output"
