#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), then the whole
# Rust workspace's tests against the shipped fixtures.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# The plugin's cdylib (libgstflorence.so) is what gst-launch and the Python example
# load; `cargo test` alone only builds the rlib the Rust tests link.
cargo build --workspace --locked
# Benchmarks (benches/) print figures and are run with `cargo bench`, not here.
cargo test --workspace --locked --no-fail-fast --lib --bins --tests
