#!/usr/bin/env bash
# Installs buf from the npm registry into ./tools (once) and prints its path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
buf="$root/tools/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      (apt-get update -qq && apt-get install -y -qq npm) >&2
    else
      echo "npm is needed to install buf" >&2; exit 1
    fi
  fi
  npm install --silent --prefix "$root/tools" @bufbuild/buf@1.75.0 >&2
fi
echo "$buf"
