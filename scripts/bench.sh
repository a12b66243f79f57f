#!/usr/bin/env bash
# The benchmark: our engine against transformers and a plain onnxruntime-Python
# loop over the same graphs, in one run, interleaved, on this machine; prints
# markdown tables (tools/bench/bench.py does the timing).
#
#   bash scripts/bench.sh                 # base-sized random model, 5 rounds, the engine's default
#                                         # threads (its process pool; the peers as many threads)
#   bash scripts/bench.sh --rounds 3 --threads 4 --variants fp32,_quantized --image-sizes 768
#   bash scripts/bench.sh --model-dir DIR # another model directory (no transformers peer
#                                         # unless --checkpoint DIR gives its PyTorch weights)
#   bash scripts/bench.sh --quick         # smoke test: tiny model, 1 round, no transformers, a
#                                         # quality part of 3 scenes at 384
#   bash scripts/bench.sh --no-quality    # the timed groups only: no quality part
#   bash scripts/bench.sh --quality       # the quality table alone: every variant of the tiny
#                                         # model at 384 and 768, and the Hailo split over the
#                                         # stand-in, scored on 48 held-out generated scenes
#   bash scripts/bench.sh --quality --quick  # its smoke test: 3 scenes, fp32 and _int8 at 384
#
# After the timed groups a run measures `florenced run`'s cold start (process
# start to its JSON line, graph cache in place) and then, unless --no-quality,
# scores the same variants of the tiny model (tools/bench/quality.py; --scenes N
# and --seed S apply to it) and prints the quality table after the speed
# tables, with one `target:` line per target of issues #10 and #21 the run can
# measure, met or not, or why not measured. --quality alone takes --scenes N,
# --seed S, --threads, --image-sizes, --variants and --log-dir; the Hailo row
# needs the stand-in library (FLORENCE_HAILO_STANDIN, else
# libflorence_hailo_standin.so beside florenced, which the release build here
# makes).
#
# The first full run installs the exporter's environment (torch + transformers,
# several GB from PyPI, minutes) and generates a Florence-2-base-shaped model with
# random weights, then the precision variants asked for (--variants, default all:
# tools/export/add_variants.py, each checked against fp32 before it is kept) in
# that model and in a copy of the tiny test model (their agreement on the fixture
# cases); all are cached under $FLORENCE_BENCH_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/florence/bench) and reused. A directory given with
# --model-dir is timed as it is (its variants present). An exporter venv at
# .venv (docs/src/test-model.md) or FLORENCE_EXPORT_VENV is used instead when present;
# FLORENCED_BIN points at a florenced binary instead of the release build this
# script makes. --ballast-gib N (default 3, 0: none) takes N GiB of memory
# before the timed workers start and holds it to the end: on a virtual machine
# that reports freed memory to its host, the worker started first otherwise ran
# 10-25 % slower, whichever system it was (tools/bench/bench.py: Ballast).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FLORENCE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/florence/bench}"
ORT_VENV="${FLORENCE_BENCH_VENV:-$ROOT/.venv-bench}"

quick=0 quality=0 quality_part=1 rounds="" model_dir="" checkpoint="" transformers=1 generate=0
variants="" variants_given=0
pass=() quality_pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --quality) quality=1 ;;
    --no-quality) quality_part=0 ;;
    --scenes|--seed) quality_pass+=("$1" "$2"); shift ;;
    --rounds) rounds="$2"; shift ;;
    --model-dir) model_dir="$2"; shift ;;
    --checkpoint) checkpoint="$2"; shift ;;
    --no-transformers) transformers=0 ;;
    --variants) variants="$2"; variants_given=1; shift ;;
    --threads|--image|--image-sizes|--cases|--variant-cases|--log-dir|--ballast-gib) pass+=("$1" "$2"); shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf 'bench.sh: %s\n' "$*" >&2; }

bash "$ROOT/tools/bench/make_venv.sh" "$ORT_VENV" "$ROOT/tools/bench/requirements-ort.txt"

if [ "$variants_given" = 0 ] && [ "$quality" = 1 ] && [ "$quick" = 1 ]; then
  variants="fp32,_int8"
elif [ "$variants_given" = 0 ]; then  # every variant the exporter writes (one list, in configs.py)
  variants="$(cd "$ROOT/tools/bench" && "$ORT_VENV/bin/python" -c 'import configs; print(configs.DEFAULT_VARIANTS)')"
fi

if [ -n "${FLORENCED_BIN:-}" ]; then
  florenced="$FLORENCED_BIN"
else
  log "building florenced (release)"
  (cd "$ROOT" && cargo build --release --locked -p florenced -p florence-hailo-standin >&2)
  florenced="$ROOT/target/release/florenced"
fi

# The variants to write: every one asked for but fp32, by exporter name (quantized, q4, ...).
make_variants="$(echo "$variants" | tr ',' '\n' | sed 's/^_//' | grep -v '^fp32$' | grep -v '^$' | paste -sd, || true)"
add_variants() {  # DIR: writes the missing variants (idempotent: complete variants are kept)
  [ -z "$make_variants" ] && return 0
  log "variants $make_variants in $1 (written once, each checked against fp32)"
  "$ORT_VENV/bin/python" "$ROOT/tools/export/add_variants.py" --model-dir "$1" --variants "$make_variants" >&2
}

# The tiny model with its variants: a copy of the fixture (which stays as committed),
# renewed when the fixture's float32 graphs or configuration change.
tiny_src="$ROOT/tests/fixtures/tiny-florence2"
tiny="$CACHE/tiny-florence2"
mkdir -p "$CACHE"
for f in "$tiny_src"/*.json "$tiny_src"/onnx/{vision_encoder,embed_tokens,encoder_model,decoder_model_merged}.onnx; do
  if ! cmp -s "$f" "$tiny/${f#"$tiny_src"/}"; then
    log "copying the tiny model to $tiny"
    rm -rf "$tiny"
    mkdir -p "$tiny/onnx"
    cp "$tiny_src"/*.json "$tiny/"
    cp "$tiny_src"/onnx/{vision_encoder,embed_tokens,encoder_model,decoder_model_merged}.onnx "$tiny/onnx/"
    break
  fi
done
add_variants "$tiny"

# The quality table's Hailo row: the split over the stand-in, when it is built.
hailo_args=(--hailo-model-dir "$tiny_src")
standin="${FLORENCE_HAILO_STANDIN:-$(dirname "$florenced")/libflorence_hailo_standin.so}"
if [ -f "$standin" ]; then
  hailo_args+=(--hailo-standin "$standin")
elif [ "$quality" = 1 ] || [ "$quality_part" = 1 ]; then
  log "no Hailo stand-in at $standin: no Hailo row"
fi

if [ "$quality" = 1 ]; then
  args=(--florenced "$florenced" --model-dir "$tiny" --variants "$variants" "${hailo_args[@]}")
  [ "$quick" = 1 ] && args+=(--scenes 3 --image-sizes 384)
  exec "$ORT_VENV/bin/python" "$ROOT/tools/bench/quality.py" "${args[@]}" "${quality_pass[@]}" "${pass[@]}"
fi

if [ "$quick" = 1 ]; then
  model_dir="${model_dir:-$tiny}"
  rounds="${rounds:-1}"
  transformers=0
elif [ -z "$model_dir" ]; then
  model_dir="$CACHE/base-random"
  checkpoint="$CACHE/base-random-pytorch"
  generate=1
elif [ ! -d "$model_dir" ]; then
  echo "bench.sh: no model directory $model_dir" >&2; exit 2
fi
rounds="${rounds:-5}"
[ -n "$checkpoint" ] || transformers=0

hf_python=""
if [ "$transformers" = 1 ] || { [ "$generate" = 1 ] && [ ! -d "$model_dir" ]; }; then
  # An exporter venv made as docs/src/test-model.md says (.venv) is reused; else one is made in the cache.
  if [ -n "${FLORENCE_EXPORT_VENV:-}" ]; then
    export_venv="$FLORENCE_EXPORT_VENV"
  elif [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
    export_venv="$ROOT/.venv"
  else
    export_venv="$CACHE/venv-export"
    bash "$ROOT/tools/bench/make_venv.sh" "$export_venv" "$ROOT/tools/export/requirements.txt"
  fi
  hf_python="$export_venv/bin/python"
fi

if [ "$generate" = 1 ] && [ ! -d "$model_dir" ]; then
  # Generated once (a few minutes): the exporter checks every graph against PyTorch.
  log "generating a Florence-2-base-shaped random model into $model_dir"
  mkdir -p "$CACHE"
  rm -rf "$model_dir.partial" "$checkpoint.partial"
  "$hf_python" "$ROOT/tools/export/export.py" --random-base --seed 0 --out "$model_dir.partial" \
    --save-checkpoint "$checkpoint.partial" >&2
  mv "$checkpoint.partial" "$checkpoint"
  mv "$model_dir.partial" "$model_dir"
fi
[ "$generate" = 1 ] && add_variants "$model_dir"
log "model: $model_dir${checkpoint:+ (PyTorch checkpoint $checkpoint)}; cache: $CACHE"

args=(--florenced "$florenced" --model-dir "$model_dir" --ort-python "$ORT_VENV/bin/python"
      --fixtures "$ROOT/tests/fixtures" --image "$ROOT/tests/fixtures/images/scene_640x480.png"
      --rounds "$rounds" --variants "$variants" --tiny-model "$tiny")
if [ "$transformers" = 1 ]; then
  args+=(--checkpoint "$checkpoint" --hf-python "$hf_python")
fi
if [ "$quick" = 1 ]; then
  # A subset of the fixture cases keeps the smoke test short; the alpha and gray
  # sources are among them because their conversion to RGB is easy to get wrong.
  args+=(--fixture-images scene_640x480,rgba_256x256,gray_320x240 --ballast-gib 1)
fi
if [ "$quality_part" = 1 ]; then
  args+=(--quality-model-dir "$tiny" "${hailo_args[@]}")
  # The quick part: 3 scenes at the tiny model's own size (seconds, not minutes).
  [ "$quick" = 1 ] && args+=(--scenes 3 --quality-image-sizes 384)
fi
exec "$ORT_VENV/bin/python" "$ROOT/tools/bench/bench.py" "${args[@]}" "${quality_pass[@]}" "${pass[@]}"
