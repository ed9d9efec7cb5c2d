#!/usr/bin/env bash
# The whole test suite, on a fresh machine: `make test` and .ci/run call this.
#   1. scripts/setup.sh installs everything (venvs, RIE, staticcheck, npm packages)
#   2. scripts/lint.sh: gofmt, go vet, staticcheck
#   3. go test -race over every package: unit, fuzz seed corpora, SDK
#      contract tests (botocore, JS v3, Go v2) and the RIE + moto end-to-end
#      scenarios (root needed for RIE's private mount namespace)
#   4. one pass of every benchmark, so they keep working (figures: make bench)
#   5. packaging: sam build, sam validate --lint, layer zips, exec wrapper
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

step setup
bash scripts/setup.sh

step "gofmt, go vet, staticcheck"
bash scripts/lint.sh

step "go test -race (unit, fuzz seeds, contract, e2e)"
mkdir -p build
CREDENTIAL_REFRESH_CONTRACT=1 CREDENTIAL_REFRESH_E2E=1 \
  go test -race -count=1 -timeout 20m -json ./... | python3 -u scripts/gotest_summary.py

step "benchmarks (one short pass)"
go test -run '^$' -bench . -benchtime 20x ./extension/... ./credrefresh/... >build/bench-smoke.txt
grep -E '^(Benchmark|ok|FAIL)' build/bench-smoke.txt

step packaging
bash scripts/check-packaging.sh

step "all green"
