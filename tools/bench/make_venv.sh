#!/usr/bin/env bash
# make_venv.sh DIR REQUIREMENTS: a Python venv at DIR with the pinned packages of
# REQUIREMENTS (from PyPI). Does nothing when DIR already holds exactly those
# pins (it keeps a copy of the file it was made from); rebuilds it otherwise.
# The venv is made with Debian's Python (scripts/system-python.sh says why).
set -euo pipefail
# shellcheck source=scripts/system-python.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/system-python.sh"
dir="$1"
req="$2"
if [ -x "$dir/bin/python" ] && cmp -s "$req" "$dir/.requirements.txt"; then
  exit 0
fi
echo "make_venv: installing $(grep -cv '^\s*#' "$req") pinned packages from $req into $dir" >&2
rm -rf "$dir"
"$SYSTEM_PYTHON" -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$dir/.requirements.txt"
