#!/usr/bin/env bash
# Live captions of a network video source, printed as florence-caption bus messages.
#
#   pipelines/network-source.sh [MODEL_DIR]
#
# FLORENCE_RTSP      an RTSP URL (rtsp://camera.local/stream): rtspsrc + decodebin
# FLORENCE_UDP_PORT  otherwise: RTP/JPEG over UDP on this port (default 5000) and
# FLORENCE_UDP_ADDRESS  address (default 0.0.0.0, every IPv4 interface), as sent by
#   gst-launch-1.0 v4l2src ! videoconvert ! video/x-raw,format=I420 ! jpegenc ! rtpjpegpay ! udpsink host=THIS_HOST port=5000
# (RTP/JPEG carries 4:2:0 or 4:2:2 only; rtpjpegpay silently drops other JPEGs)
# FLORENCE_INTERVAL  minimum ms between two analyses (default 1000)
#
# Stop with Ctrl-C (gst-launch -e sends EOS first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/tests/fixtures/tiny-florence2}
interval=${FLORENCE_INTERVAL:-1000}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$root/target/release}
if [ -n "${FLORENCE_RTSP:-}" ]; then
  source="rtspsrc location=$FLORENCE_RTSP latency=200 ! decodebin"
else
  port=${FLORENCE_UDP_PORT:-5000}
  address=${FLORENCE_UDP_ADDRESS:-0.0.0.0}
  source="udpsrc address=$address port=$port caps=application/x-rtp,media=video,encoding-name=JPEG,payload=26,clock-rate=90000 ! rtpjitterbuffer latency=100 ! rtpjpegdepay ! jpegdec"
fi
# shellcheck disable=SC2086 # source is a pipeline fragment
exec gst-launch-1.0 -e -m \
  $source ! videoconvert ! \
  florencecaption model-dir="$model" inference-interval="$interval" ! fakesink sync=false
