#!/usr/bin/env bash
# Checks the Hailo bridges without a device or libhailort:
#  1. builds gst-florence/hailo/florence_hailo_bridge.cpp as the two shared
#     libraries (scripts/build-hailo-bridges.sh: HailoRT 5.2.0 and 4.23.0
#     headers, so every call is checked against the real API), for x86_64 and,
#     when the cross compiler is installed (setup.sh --aarch64; required under
#     CI), for aarch64;
#  2. checks each library's dynamic symbols: it exports exactly the functions
#     of florence_hailo_bridge.h, libhailort is NOT a DT_NEEDED, and every
#     undefined symbol is HailoRT's (C `hailo_*`, C++ `hailort::`) or a
#     versioned one of the C/C++ runtime;
#  3. loads the x86_64 bridges through the engine's loader against the
#     stand-in libhailort (hailo-standin/): the loader picks the bridge of the
#     library's major and refuses it with the undefined HailoRT symbol named,
#     since the stand-in provides only hailo_get_library_version (HailoRT's C++
#     API is not faked; running it needs a Pi with a device).
# The headers are not part of the project: they are looked for in
# $HAILORT_HEADERS_DIR, else ../shared/third_party beside the checkout (where
# CI has them). Missing headers fail the check under CI (CI=true) and skip it,
# with a message, elsewhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HEADERS="${HAILORT_HEADERS_DIR:-$ROOT/../shared/third_party}"
VERSIONS=(5.2.0 4.23.0)
HOST="$(uname -m)-unknown-linux-gnu"
BRIDGES="${CARGO_TARGET_DIR:-$ROOT/target}/hailo-bridges"

log() { printf 'check-hailo-bridge: %s\n' "$*"; }
fail() { printf 'check-hailo-bridge: FAIL: %s\n' "$*" >&2; exit 1; }

missing=()
for v in "${VERSIONS[@]}"; do
    [[ -f "$HEADERS/hailort-$v/include/hailo/hailort.hpp" ]] || missing+=("$HEADERS/hailort-$v/include/hailo/hailort.hpp")
done
if ((${#missing[@]})); then
    echo "check-hailo-bridge: HailoRT headers not found: ${missing[*]}" >&2
    if [[ "${CI:-}" == "true" ]]; then
        echo "check-hailo-bridge: CI needs them (shared/third_party beside the clone, or HAILORT_HEADERS_DIR)" >&2
        exit 1
    fi
    echo "check-hailo-bridge: skipped (set HAILORT_HEADERS_DIR to a folder holding hailort-<version>/include)" >&2
    exit 0
fi

targets=("$HOST")
if [[ "$HOST" != aarch64-unknown-linux-gnu ]]; then
    if command -v aarch64-linux-gnu-g++ >/dev/null; then
        targets+=(aarch64-unknown-linux-gnu)
    elif [[ "${CI:-}" == "true" ]]; then
        fail "aarch64-linux-gnu-g++ not found (bash scripts/setup.sh --aarch64 installs it)"
    else
        log "aarch64 skipped: aarch64-linux-gnu-g++ not installed (bash scripts/setup.sh --aarch64)"
    fi
fi

# The C ABI: every function the header declares.
abi="$(grep -oE '\bflorence_hailo_[a-z_]+\(' "$ROOT/gst-florence/hailo/florence_hailo_bridge.h" | tr -d '(' | sort -u)"
for t in "${targets[@]}"; do
    bash "$ROOT/scripts/build-hailo-bridges.sh" --target "$t" --headers "$HEADERS" --out "$BRIDGES/$t"
    for v in "${VERSIONS[@]}"; do
        lib="$BRIDGES/$t/libflorence_hailo_hailort${v%%.*}.so"
        exported="$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)"
        [[ "$exported" == "$abi" ]] ||
            fail "$lib exports [$(echo $exported)], the header declares [$(echo $abi)]"
        if readelf -d "$lib" | grep -E 'NEEDED.*libhailort' >/dev/null; then
            fail "$lib has libhailort as a DT_NEEDED: it must load without it"
        fi
        # Unversioned, non-weak undefined symbols: HailoRT's and nothing else.
        foreign="$(nm -D --undefined-only "$lib" | awk '$1 == "U" && $2 !~ /@/ {print $2}' |
            grep -vE '^(hailo_|_ZN7hailort|_ZNK7hailort)' || true)"
        [[ -z "$foreign" ]] || fail "$lib needs symbols that are not HailoRT's: $(echo $foreign)"
        hailort="$(nm -D --undefined-only "$lib" | grep -cE ' (hailo_|_ZN7hailort|_ZNK7hailort)')"
        ((hailort > 0)) || fail "$lib uses no HailoRT symbol"
        log "$lib: exports the $(echo "$abi" | wc -l) ABI functions, no DT_NEEDED libhailort, $hailort HailoRT symbols left to the run-time libhailort"
    done
done

cd "$ROOT"
cargo build -p florence-hailo-standin --locked
FLORENCE_HAILO_BRIDGES_BUILT="$BRIDGES/$HOST" \
    cargo test -p gst-florence --test hailo_bridge --locked -- --ignored --exact real_bridges_load_through_the_loader_up_to_hailorts_own_symbols
log "the $HOST bridges go through the engine's loader"
