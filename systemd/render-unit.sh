#!/bin/sh
# Prints hailo-florence.service with its /usr/local paths moved to PREFIX: one
# renderer for systemd/install.sh (--prefix) and the Debian package (/usr), so
# both install the same unit.
#   systemd/render-unit.sh PREFIX [DOC_DIR]
# DOC_DIR: where README.md is installed (default PREFIX/share/doc/florenced).
set -eu
prefix=${1:?usage: render-unit.sh PREFIX [DOC_DIR]}
doc_dir=${2:-$prefix/share/doc/florenced}
case "$prefix$doc_dir" in
  *'|'*|*'&'*|*'\'*) echo "render-unit.sh: unsupported character in $prefix or $doc_dir" >&2; exit 2 ;;
esac
case "$prefix" in
  /*) ;;
  *) echo "render-unit.sh: PREFIX must be an absolute path, not $prefix" >&2; exit 2 ;;
esac
prefix=${prefix%/}
sed -e "s|/usr/local/share/doc/florenced|$doc_dir|g" \
    -e "s|/usr/local/|$prefix/|g" \
    "$(dirname "$0")/hailo-florence.service"
