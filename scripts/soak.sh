#!/usr/bin/env bash
# Soak: the real florenced (debug build) with the tiny model on loopback under
# valid, invalid, slow and vanishing clients for MINUTES (default 10; the first
# tenth is a warm-up), then its figures: RSS, open fds and threads after the
# warm-up and at the end, latency median/p99, a count per outcome. Exits
# non-zero on a lost or wrong answer, an undocumented status, a slow client
# not cut, or growth beyond the bounds stated in florenced/tests/soak.rs.
#   bash scripts/soak.sh [MINUTES]     (report also in target/soak-report.txt)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MINUTES="${1:-10}"
export SOAK_MINUTES="$MINUTES" SOAK_REPORT="$ROOT/target/soak-report.txt"
cargo test -p florenced --locked --test soak -- --ignored --exact soak_for_minutes --nocapture
