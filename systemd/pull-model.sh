#!/usr/bin/env bash
# Pulls a Florence-2 model for the service: the Hugging Face Hub's files for one
# variant into a Hub cache, laid out as a model directory under MODELS (hard links
# into the cache, so no second copy), checked by loading it. Prints the directory.
#   systemd/pull-model.sh --binary PATH --models DIR --cache DIR [--ort-library PATH] MODEL [VARIANT]
# MODEL: florence-2-base-ft, florence-2-large-ft, florence-2-base, florence-2-large or owner/name.
# install.sh --model calls it; HF_ENDPOINT and HF_TOKEN are passed through to florenced.
set -euo pipefail
binary=/usr/local/bin/florenced
models=/var/lib/hailo-florence/models
cache=/var/lib/hailo-florence/hub
ort=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --ort-library) ort=$2; shift 2 ;;
    -h|--help) sed -n 2,7p "$0"; exit 0 ;;
    -*) echo "pull-model.sh: unknown argument $1" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ "${#args[@]}" -ge 1 ] && [ "${#args[@]}" -le 2 ] || { echo "pull-model.sh: expected MODEL [VARIANT]" >&2; exit 2; }
model=${args[0]}
variant=${args[1]:-}
# The directory is named as the repository (the short names' repositories are
# onnx-community/Florence-2-*), which is what the default configuration names.
case "${model,,}" in
  florence-2-base-ft) name=Florence-2-base-ft ;;
  florence-2-large-ft) name=Florence-2-large-ft ;;
  florence-2-base) name=Florence-2-base ;;
  florence-2-large) name=Florence-2-large ;;
  */*) name=${model##*/} ;;
  *) echo "pull-model.sh: unknown model $model (a short name or owner/name)" >&2; exit 2 ;;
esac
install -d -m 0755 "$models" "$cache"
pull=("$binary" pull "$model" --variant "$variant" --model-dir "$models/$name")
[ -n "$ort" ] && pull+=(--ort-library "$ort")
HF_HUB_CACHE=$cache "${pull[@]}"
