#!/usr/bin/env bash
# The streams benchmark (issue #19): N streams on one model in one process
# against the same N streams in N processes, in one run: florencecaption
# instances in one gst-launch-1.0 pipeline (every-frame and live) and
# concurrent florenced clients on loopback (<CAPTION> 20 tokens,
# <MORE_DETAILED_CAPTION> 100 tokens); prints markdown tables with peak RSS,
# analyses per second, p50/p99 latency and the issue's targets
# (tools/bench/streams.py does the work).
#
#   bash scripts/bench-streams.sh                     # base-shaped random model, 1,2,4,8 streams, 3 rounds
#   bash scripts/bench-streams.sh --streams 1,2,4 --rounds 5
#   bash scripts/bench-streams.sh --model-dir DIR     # another model directory
#   bash scripts/bench-streams.sh --quick             # smoke test: tiny model, 1 and 2 streams, 2 rounds
#
# Options passed on: --streams LIST, --rounds N (timed analyses per stream after
# a warm-up one), --workloads every-frame,live,caption,detailed, --log-dir DIR,
# --guard-s S (hang guard). The default model is the base-shaped random model
# that scripts/bench.sh generates into $FLORENCE_BENCH_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/florence/bench)/base-random. FLORENCED_BIN and
# FLORENCE_PLUGIN_DIR (the folder of libgstflorence.so) point at built
# binaries instead of the release build this script makes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FLORENCE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/florence/bench}"
ORT_VENV="${FLORENCE_BENCH_VENV:-$ROOT/.venv-bench}"

quick=0 model_dir=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --model-dir) model_dir="$2"; shift ;;
    --streams|--rounds|--workloads|--log-dir|--guard-s) pass+=("$1" "$2"); shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-streams.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf 'bench-streams.sh: %s\n' "$*" >&2; }

# Pillow for the HTTP clients' images: the benchmark's venv, as bench.sh makes it.
bash "$ROOT/tools/bench/make_venv.sh" "$ORT_VENV" "$ROOT/tools/bench/requirements-ort.txt"

build=()
[ -n "${FLORENCED_BIN:-}" ] || build+=(-p florenced)
[ -n "${FLORENCE_PLUGIN_DIR:-}" ] || build+=(-p gst-florence)
if [ ${#build[@]} -gt 0 ]; then
  log "building ${build[*]} (release)"
  (cd "$ROOT" && cargo build --release --locked "${build[@]}" >&2)
fi
florenced="${FLORENCED_BIN:-$ROOT/target/release/florenced}"
plugin_dir="${FLORENCE_PLUGIN_DIR:-$ROOT/target/release}"

defaults=()
if [ "$quick" = 1 ]; then
  model_dir="${model_dir:-$ROOT/tests/fixtures/tiny-florence2}"
  defaults=(--streams 1,2 --rounds 2 --guard-s 120)
elif [ -z "$model_dir" ]; then
  model_dir="$CACHE/base-random"
  if [ ! -d "$model_dir" ]; then
    echo "bench-streams.sh: no $model_dir; bash scripts/bench.sh generates it (or give --model-dir DIR)" >&2
    exit 2
  fi
fi
[ -d "$model_dir" ] || { echo "bench-streams.sh: no model directory $model_dir" >&2; exit 2; }
log "model: $model_dir"

# The options given come after the defaults: the last one of a name wins.
exec "$ORT_VENV/bin/python" "$ROOT/tools/bench/streams.py" --florenced "$florenced" --plugin-dir "$plugin_dir" \
  --model-dir "$model_dir" --image "$ROOT/tests/fixtures/images/scene_640x480.png" "${defaults[@]}" "${pass[@]}"
