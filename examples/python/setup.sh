#!/usr/bin/env bash
# Creates (once) a Python virtual environment with gRPC tools from PyPI and
# generates stubs from proto/. Prints the venv's python path on the last line.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${LIAISON_PY_VENV:-$root/target/py-venv}"
# shellcheck source=../../tests/tools/venv.sh
. "$root/tests/tools/venv.sh"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import grpc, grpc_tools, google.protobuf" 2>/dev/null; then
  make_venv "$venv"
  "$venv/bin/pip" install --quiet "grpcio==1.85.*" "grpcio-tools==1.85.*" >&2
fi
out="$venv/stubs"
rm -rf "$out" && mkdir -p "$out"
"$venv/bin/python" -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$out" --grpc_python_out="$out" "$root"/proto/liaison/v1/*.proto >&2
echo "$venv/bin/python"
