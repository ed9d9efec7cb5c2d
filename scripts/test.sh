#!/usr/bin/env bash
# The whole test suite, on a fresh machine: `make test` and .ci/run call this.
#   1. scripts/setup.sh installs everything (venvs, RIE, staticcheck, npm packages, the Java example)
#   2. scripts/lint.sh: gofmt, go vet, staticcheck
#   3. the layer's Python and Node helpers' own unit tests (pytest, node --test)
#   4. make image: both layer zips and the OCI image of the same trees
#   5. go test -race over every package: unit, fuzz seed corpora, SDK
#      contract tests (botocore, JS v3, Go v2) and the RIE + moto end-to-end
#      scenarios (root needed for RIE's private mount namespace)
#   6. one pass of every benchmark, so they keep working (figures: make bench)
#   7. packaging: sam build, sam validate --lint, layer zips, OCI image, exec wrapper
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

step setup
bash scripts/setup.sh

step "gofmt, go vet, staticcheck"
bash scripts/lint.sh

step "layer helpers: pytest (Python) and node --test (Node)"
# PYTHONPATH and NODE_PATH play the layer's /opt/python and
# /opt/nodejs/node_modules; test/helpers/node/node_modules plays the SDK the
# Node.js runtime bundles.
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=layer/python .venv/bin/python -m pytest -q -p no:cacheprovider test/helpers/python
NODE_PATH=$PWD/layer/nodejs/node_modules:$PWD/test/helpers/node/node_modules \
  node --test test/helpers/node/

step "layer zips and OCI image (make image)"
# The e2e image check (TestImageUnderRIE) runs the image built here from the
# same trees as the zips. scripts/check-packaging.sh (the last step) runs
# make image again after its sam builds and has go test ./packaging compare
# each platform's image with its zip, byte for byte.
make --no-print-directory image

# ./packaging runs whole in the packaging step, once the artifacts exist.
step "go test -race (unit, fuzz seeds, contract, e2e)"
mkdir -p build
CREDENTIAL_REFRESH_CONTRACT=1 CREDENTIAL_REFRESH_E2E=1 CREDENTIAL_REFRESH_E2E_IMAGE=$PWD/build/credential-refresh-image \
  go test -race -count=1 -timeout 20m -json $(go list ./... | grep -v '/packaging$') | python3 -u scripts/gotest_summary.py

step "benchmarks (one short pass)"
go test -run '^$' -bench . -benchtime 20x ./extension/... ./credrefresh/... >build/bench-smoke.txt
grep -E '^(Benchmark|ok|FAIL)' build/bench-smoke.txt

step packaging
bash scripts/check-packaging.sh

step "all green"
