#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), then the whole
# Rust workspace's tests against the shipped fixtures.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
cargo test --workspace --locked --all-targets
