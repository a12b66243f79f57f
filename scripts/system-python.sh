# shellcheck shell=bash disable=SC2034
# Sourced by the set-up scripts: the Python they make venvs with. Debian's own
# /usr/bin/python3, the one that apt's python3-venv and python3-gi belong to and
# the only one a fresh Debian 12 / 13 or Raspberry Pi OS has; not whichever
# python3 comes first on PATH (a pyenv or conda build may lack the venv module,
# or have a pip that a user's Debian does not). Nothing uses a system pip: a
# fresh Debian has none (python3-pip is not installed); the venvs bring their own
# (Debian's venv module installs pip into them with ensurepip).
SYSTEM_PYTHON=/usr/bin/python3
