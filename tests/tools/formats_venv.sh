#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the exchange-format tools
# this field uses (STIX 2.1 validator and library, TAXII 2.1 client,
# FollowTheMoney, PyMISP), pinned from PyPI, for tests/python/formats_check.py.
# Prints the venv's python path on the last line.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${LIAISON_FORMATS_VENV:-$root/target/formats-venv}"
# shellcheck source=venv.sh
. "$root/tests/tools/venv.sh"
if [ ! -x "$venv/bin/python" ] ||
  ! "$venv/bin/python" -c "import stix2validator, stix2, taxii2client, followthemoney, pymisp" 2>/dev/null; then
  make_venv "$venv"
  "$venv/bin/pip" install --quiet \
    "stix2-validator==3.3.*" "stix2==3.0.*" "taxii2-client==2.3.*" \
    "followthemoney==4.11.*" "pymisp==2.5.*" >&2
fi
echo "$venv/bin/python"
