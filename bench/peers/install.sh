#!/usr/bin/env bash
# The peer gateways bench/compat.py compares this gateway with, each in a virtualenv of its
# own under bench/peers/ (git-ignored), installed from the pins committed next to this file.
# For now one peer: LiteLLM's proxy, in bench/peers/.venv-litellm.
#
#   bash bench/peers/install.sh           # install (again) from litellm-constraints.txt
#   bash bench/peers/install.sh --lock    # resolve anew, then rewrite litellm-constraints.txt
#
# LiteLLM is pinned to 1.82.6, NEVER 1.82.7 or 1.82.8: those two releases were compromised.
# Move the pin only to a release known to be clean, then --lock and review the diff of
# litellm-constraints.txt before committing it.
set -euo pipefail

LITELLM_VERSION=1.82.6
case "$LITELLM_VERSION" in
  1.82.7 | 1.82.8)
    echo "error: litellm $LITELLM_VERSION is a compromised release; never install it" >&2
    exit 1
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv-litellm"
constraints="$here/litellm-constraints.txt"
python=${PYTHON:-python3}

lock=0
case "${1:-}" in
  "") ;;
  --lock) lock=1 ;;
  *)
    echo "usage: $0 [--lock]" >&2
    exit 2
    ;;
esac

if [ "$lock" = 1 ]; then
  # A clean resolution: nothing left over from an earlier install is pinned by mistake.
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet "litellm[proxy]==$LITELLM_VERSION"
  {
    echo "# Pins of bench/peers/.venv-litellm: bash bench/peers/install.sh --lock writes this file"
    echo "# (pip freeze after installing litellm[proxy]==$LITELLM_VERSION); do not edit by hand."
    "$venv/bin/python" -m pip freeze --all | grep -v -E '^(pip|setuptools|wheel)=='
  } >"$constraints"
  echo "wrote $constraints"
else
  if [ ! -f "$constraints" ]; then
    echo "error: $constraints is missing (bash $0 --lock writes it)" >&2
    exit 1
  fi
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -c "$constraints" "litellm[proxy]==$LITELLM_VERSION"
fi

installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')
if [ "$installed" != "$LITELLM_VERSION" ]; then
  echo "error: litellm $installed installed, expected $LITELLM_VERSION" >&2
  exit 1
fi
echo "litellm $installed in $venv (proxy: $venv/bin/litellm)"
