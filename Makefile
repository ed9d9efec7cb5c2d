# lambda-credential-refresh: build, package and deploy.
#
# `make help` lists the targets. The build-* targets are called by
# `sam build` (BuildMethod: makefile) with ARTIFACTS_DIR set; SAM passes no
# architecture, so ARCH selects it (amd64 or arm64; x86_64 also accepted).
#   ARCH=arm64 make sam-build      builds everything for Graviton
#   make layer                     builds both layer zips

SHELL := /bin/bash
.DEFAULT_GOAL := help

ARCH ?= amd64
GO ?= go
# The project venv's SAM CLI if scripts/setup.sh installed it, else PATH's.
SAM ?= $(if $(wildcard $(CURDIR)/.venv-sam/bin/sam),$(CURDIR)/.venv-sam/bin/sam,sam)
STACK_NAME ?= credential-refresh-example

# Go and Lambda spell the architectures differently.
goarch.amd64 := amd64
goarch.x86_64 := amd64
goarch.arm64 := arm64
lambdaarch.amd64 := x86_64
lambdaarch.arm64 := arm64
GOARCH := $(goarch.$(ARCH))
LAMBDA_ARCH := $(lambdaarch.$(GOARCH))

# Stamped into main.version if the extension declares it (-X ignores a
# missing symbol). -buildvcs=false: the version comes from here, and SAM may
# build in a scratch copy without .git.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO_BUILD = CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$(VERSION)"

# Never phone home from a build machine.
export SAM_CLI_TELEMETRY := 0

BUILD_DIR := build
WRAPPER := layer/credential-refresh/exec-wrapper
# The in-layer helpers, as paths under layer/ and in the layer: the Python
# package (/opt/python is on sys.path) and the Node package
# (/opt/nodejs/node_modules is on NODE_PATH). Listed, not globbed, so no
# __pycache__ or editor file slips in.
HELPERS := python/credential_refresh/__init__.py \
	nodejs/node_modules/credential-refresh/package.json \
	nodejs/node_modules/credential-refresh/index.js \
	nodejs/node_modules/credential-refresh/index.mjs \
	nodejs/node_modules/credential-refresh/index.d.ts

.PHONY: help test demo bench fleet bench-compare lint layer sam-build sam-validate deploy clean check-arch check-artifacts-dir \
	build-CredentialRefreshLayer build-GoExampleFunction build-JavaExampleFunction

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-30s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "  Variables: ARCH=$(ARCH) (amd64|arm64)  STACK_NAME=$(STACK_NAME)  SAM=$(SAM)"

test: ## Run every test: gofmt, vet, staticcheck, go test -race, e2e, packaging (scripts/test.sh)
	bash scripts/test.sh

demo: ## Run the local end-to-end demo with RIE and moto (scripts/demo.sh)
	bash scripts/demo.sh

bench: ## Benchmarks of the hot paths: keeper read, credentials GET (ns/op, allocs/op)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./extension/... ./credrefresh/...

FLEET_DIR := $(BUILD_DIR)/fleet
fleet: ## Fleet simulation (docs/fleet.md): docs/fleet-results.md and docs/fleet-*.png
	$(GO) run ./extension/cmd/fleetsim -docs -out $(FLEET_DIR)
	cp $(FLEET_DIR)/results.md docs/fleet-results.md
	cd tools/fleetplot && $(GO) run . -in $(CURDIR)/$(FLEET_DIR) -out $(CURDIR)/docs

bench-compare: ## The endpoint, memory and init time vs a bare net/http handler, A/B interleaved (about 10 min): build/bench-compare.md
	$(GO) run ./bench/benchcompare -out $(BUILD_DIR)/bench-compare.md

lint: ## gofmt, go vet, staticcheck (scripts/lint.sh), sh -n on the wrapper, sam validate --lint
	bash scripts/lint.sh
	sh -n $(WRAPPER)
	$(MAKE) --no-print-directory sam-validate

check-arch:
	@if [[ -z "$(GOARCH)" ]]; then echo "ARCH=$(ARCH): want amd64 (x86_64) or arm64" >&2; exit 2; fi

check-artifacts-dir:
	@if [[ -z "$(ARTIFACTS_DIR)" ]]; then echo "ARTIFACTS_DIR is not set: this target is run by sam build" >&2; exit 2; fi

build-CredentialRefreshLayer: check-arch check-artifacts-dir ## (sam build) Layer tree in $ARTIFACTS_DIR: extensions/credential-refresh, credential-refresh/exec-wrapper, the python/ and nodejs/ helpers
	mkdir -p "$(ARTIFACTS_DIR)/extensions" "$(ARTIFACTS_DIR)/credential-refresh"
	$(GO_BUILD) -o "$(ARTIFACTS_DIR)/extensions/credential-refresh" ./extension
	install -m 0755 $(WRAPPER) "$(ARTIFACTS_DIR)/credential-refresh/exec-wrapper"
	@for f in $(HELPERS); do install -D -m 0644 "layer/$$f" "$(ARTIFACTS_DIR)/$$f" || exit 1; done

build-GoExampleFunction: check-arch check-artifacts-dir ## (sam build) The Go example as $ARTIFACTS_DIR/bootstrap
	$(GO_BUILD) -tags lambda.norpc -o "$(ARTIFACTS_DIR)/bootstrap" ./examples/go

build-JavaExampleFunction: check-artifacts-dir ## (sam build) The Java example (classes + lib/) in $ARTIFACTS_DIR, built by Maven with a JDK >= 21
	bash scripts/build-java.sh "$(ARTIFACTS_DIR)"

layer: ## Build build/credential-refresh-layer-{x86_64,arm64}.zip (executable bits kept)
	@for a in amd64 arm64; do \
	  $(MAKE) --no-print-directory layer-zip ARCH=$$a || exit 1; \
	done

# One zip for ARCH. The tree is staged fresh so no stale file slips in.
# Both zip and python's zipfile keep the Unix file modes (Lambda needs the
# executable bits); zip -X drops host-specific extra fields.
LAYER_TREE = $(BUILD_DIR)/layer-$(LAMBDA_ARCH)
LAYER_ZIP = $(CURDIR)/$(BUILD_DIR)/credential-refresh-layer-$(LAMBDA_ARCH).zip
.PHONY: layer-zip
layer-zip: check-arch
	rm -rf "$(LAYER_TREE)" "$(LAYER_ZIP)"
	$(MAKE) --no-print-directory build-CredentialRefreshLayer ARTIFACTS_DIR="$(CURDIR)/$(LAYER_TREE)"
	cd "$(LAYER_TREE)" && if command -v zip >/dev/null; then \
	  zip -q -X -9 -r "$(LAYER_ZIP)" extensions credential-refresh python nodejs; \
	else \
	  python3 -m zipfile -c "$(LAYER_ZIP)" extensions credential-refresh python nodejs; \
	fi
	@ls -l "$(LAYER_ZIP)"

# The OCI image of the same trees the zips hold (make layer stages them):
# one image per architecture in an OCI image index, written without Docker
# by cmd/layer-image (go-containerregistry). SOURCE_DATE_EPOCH, by default
# the last commit's time, fixes every timestamp in it.
IMAGE_DIR = $(CURDIR)/$(BUILD_DIR)/credential-refresh-image
IMAGE_ARCHIVE = $(CURDIR)/$(BUILD_DIR)/credential-refresh-image.oci.tar
.PHONY: image
image: layer ## Build build/credential-refresh-image (OCI layout, linux/amd64 + linux/arm64) and its .oci.tar from the zips' trees
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)} \
	  $(GO) run ./cmd/layer-image -amd64 $(BUILD_DIR)/layer-x86_64 -arm64 $(BUILD_DIR)/layer-arm64 \
	  -out "$(IMAGE_DIR)" -archive "$(IMAGE_ARCHIVE)" -version "$(VERSION)"

sam-build: check-arch ## sam build, for ARCH (passes Architecture=x86_64|arm64 to the template)
	ARCH=$(GOARCH) $(SAM) build --template template.yaml --build-dir .aws-sam/build \
	  --parameter-overrides Architecture=$(LAMBDA_ARCH)

sam-validate: ## sam validate --lint (cfn-lint, offline)
	$(SAM) validate --lint --template template.yaml --region us-east-1

deploy: sam-build ## sam deploy --guided (needs AWS credentials; asks before changing anything)
	$(SAM) deploy --guided --template-file .aws-sam/build/template.yaml --stack-name $(STACK_NAME) \
	  --parameter-overrides Architecture=$(LAMBDA_ARCH)

clean: ## Remove build/ and .aws-sam/
	rm -rf $(BUILD_DIR) .aws-sam
