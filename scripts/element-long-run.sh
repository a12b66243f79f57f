#!/usr/bin/env bash
# A long run of the florencecaption element (debug build, tiny model):
# videotestsrc pattern=ball at 160x120 ! florencecaption ! fakesink sync=false,
# as fast as it goes. Prints one JSON object: frames through, results (bus
# messages and text_src buffers), RSS after the warm-up / at EOS / max, time.
# Fails on an error, a stall (no frame for --stall-s), a missing frame, in
# every-frame mode results that are not one per frame, or RSS growth past
# --rss-slack-mib (default 32).
#   bash scripts/element-long-run.sh --mode live --frames 100000
#   bash scripts/element-long-run.sh --mode every-frame --frames 10000
# (other options: scripts/element_long_run.py --help)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build -p gst-florence --locked
GST_PLUGIN_PATH="$ROOT/target/debug" exec /usr/bin/python3 scripts/element_long_run.py "$@"
