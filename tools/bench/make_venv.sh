#!/usr/bin/env bash
# make_venv.sh DIR REQUIREMENTS: a Python venv at DIR with the pinned packages of
# REQUIREMENTS (from PyPI). Does nothing when DIR already holds exactly those
# pins (it keeps a copy of the file it was made from); rebuilds it otherwise.
set -euo pipefail
dir="$1"
req="$2"
if [ -x "$dir/bin/python" ] && cmp -s "$req" "$dir/.requirements.txt"; then
  exit 0
fi
echo "make_venv: installing $(grep -cv '^\s*#' "$req") pinned packages from $req into $dir" >&2
rm -rf "$dir"
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$dir/.requirements.txt"
