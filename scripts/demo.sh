#!/usr/bin/env bash
# make demo: installs what is needed (scripts/setup.sh), then runs the
# example functions with the credential-refresh layer under RIE against moto
# and prints a timeline. Needs root (RIE runs in a private mount namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_SAM=${SKIP_SAM:-1} scripts/setup.sh
# Until the lead commits examples/node/package-lock.json, setup.sh's
# `git ls-files` does not see it: install the Node example's dependencies here.
if [[ ! -d examples/node/node_modules || examples/node/package-lock.json -nt examples/node/node_modules ]]; then
  (cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
fi
exec go run ./e2e/cmd/demo "$@"
