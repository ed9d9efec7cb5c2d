#!/usr/bin/env bash
# Static checks of the Go code, the one implementation that scripts/test.sh
# and `make lint` both run:
#   gofmt -l       over every Go file git tracks or would track
#   go vet ./...
#   staticcheck ./...   (bin/staticcheck, pinned and installed by scripts/setup.sh)
# Exits non-zero at the first check that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every check staticcheck enables by default, on every package.
STATICCHECK_CHECKS=${STATICCHECK_CHECKS:-inherit}

step() { printf -- '--> %s\n' "$*"; }

step gofmt
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.go' | while read -r f; do [[ -f $f ]] && echo "$f"; done)
unformatted=$(gofmt -l "${files[@]}")
if [[ -n $unformatted ]]; then
  echo "gofmt needed (run gofmt -w on these):"
  echo "$unformatted"
  exit 1
fi

step "go vet"
go vet ./...

step "staticcheck ($STATICCHECK_CHECKS)"
if [[ ! -x bin/staticcheck ]]; then
  echo "bin/staticcheck is missing: run scripts/setup.sh" >&2
  exit 1
fi
bin/staticcheck -checks "$STATICCHECK_CHECKS" ./...
