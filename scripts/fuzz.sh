#!/usr/bin/env bash
# Fuzzes florence's input parsers with cargo fuzz (libFuzzer; targets in fuzz/):
# request bodies (JSON, multipart, raw image + query, the image field as data
# URI / base64), image decoding, prompt building through the real tokenizer,
# the post-processor on text and on token ids, the configuration loader.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   default 60 s, every target
#   scripts/fuzz.sh --smoke [TARGET...]                each target once over its
#                                                      committed corpus (CI)
#   FUZZ_SANITIZER=none scripts/fuzz.sh ...            without AddressSanitizer
#
# Prints per target: executions, exec/s, coverage (libFuzzer's cov: edges and
# ft: features), corpus units found, crashes. New corpus units go to a scratch
# directory that is removed afterwards: fuzz/corpus/ holds only the small
# committed seeds. A crash leaves its input in fuzz/artifacts/TARGET/ and makes
# the script exit 1 (reproduce: cargo fuzz run TARGET fuzz/artifacts/TARGET/FILE).
#
# cargo fuzz passes nightly-only flags (-Zsanitizer, sanitizer coverage) to
# rustc; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Installs the
# pinned cargo-fuzz with `cargo install --locked` when it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_FUZZ_VERSION="0.13.2"
export RUSTC_BOOTSTRAP=1
SANITIZER="${FUZZ_SANITIZER:-address}"

smoke=0
seconds=60
if [ "${1:-}" = "--smoke" ]; then
  smoke=1
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds="$1"
  shift
fi

if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
# ONNX Runtime (the prompt and post-processor targets load the tiny model).
bash "$ROOT/scripts/setup.sh" >/dev/null

cd "$ROOT/fuzz"
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
echo "fuzz: building ${#targets[@]} targets (sanitizer: $SANITIZER)"
cargo fuzz build -s "$SANITIZER" >/dev/null

scratch="$(mktemp -d "${TMPDIR:-/tmp}/florence-fuzz.XXXXXX")"
trap 'rm -rf "$scratch" /tmp/florence-fuzz-config-*.yaml' EXIT
failed=0
printf '%-18s %12s %8s %7s %7s %6s %8s\n' target executions exec/s cov ft new crashes
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "artifacts/$t"
  before="$(find "artifacts/$t" -type f | wc -l)"
  log="$scratch/$t.log"
  if [ "$smoke" = 1 ]; then
    limits=(-runs=0)
  else
    limits=(-max_total_time="$seconds")
  fi
  # The first corpus directory receives new units (the scratch one); the
  # committed seeds are read only.
  status=0
  cargo fuzz run -s "$SANITIZER" "$t" "$scratch/$t" "corpus/$t" -- \
    "${limits[@]}" -print_final_stats=1 -rss_limit_mb=4096 -timeout=60 \
    >"$log" 2>&1 || status=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)"
  crashes=$(($(find "artifacts/$t" -type f | wc -l) - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes="?"
  fi
  printf '%-18s %12s %8s %7s %7s %6s %8s\n' "$t" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "$(awk '{print $2}' <<<"$cov")" "$(awk '{print $4}' <<<"$cov")" \
    "$(stat new_units_added)" "$crashes"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "fuzz: $t failed (exit $status); its log:" >&2
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 >&2 || tail -20 "$log" >&2
  fi
done
exit "$failed"
