#!/usr/bin/env bash
# Installs the Python tools the HTTP tests drive (schemathesis,
# openapi-python-client for the generated-client test, huggingface_hub for the
# `florenced pull` cache test) into .test-venv/ from PyPI,
# every package pinned in scripts/python-test-tools.txt. Called by setup.sh;
# safe to run again: a venv installed from the same pin list is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.test-venv"
PINS="$ROOT/scripts/python-test-tools.txt"
# The stamp holds the pin list the venv was installed from.
STAMP="$VENV/.florence-pins"

log() { printf 'setup: %s\n' "$*"; }

# shellcheck source=scripts/system-python.sh
source "$ROOT/scripts/system-python.sh"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && cmp -s "$PINS" "$STAMP"; then
  log "Python test tools present in $VENV"
  exit 0
fi
log "installing the Python test tools ($PINS) into $VENV"
"$SYSTEM_PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PINS"
cp "$PINS" "$STAMP"
log "Python test tools installed in $VENV"
