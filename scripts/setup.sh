#!/usr/bin/env bash
# Installs everything the tests and the demo need, project-locally and pinned:
#   .venv      boto3, moto[server], awslambdaric, awscli   (requirements-dev.txt)
#   .venv-sam  aws-sam-cli                          (requirements-sam.txt)
#   bin/aws-lambda-rie, bin/staticcheck             (go install from the module proxy)
#   node_modules of every package.json with a lockfile (npm ci)
#   examples/java/target (Maven into .m2/, a JDK >= 21 linked as bin/java-home)
# Idempotent: a second run only compares what is there with what is wanted
# (file contents and the versions built into bin/, not timestamps) and
# installs nothing; that takes a few tens of milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d
STATICCHECK_VERSION=v0.8.2 # honnef.co/go/tools (staticcheck 2026.2.2)

log() { printf '[setup] %s\n' "$*" >&2; }

venv() { # venv DIR REQUIREMENTS
  local dir=$1 req=$2 stamp=$1/.installed
  if [[ -f $stamp ]] && cmp -s "$req" "$stamp"; then return; fi
  log "python venv $dir from $req"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
}

venv .venv requirements-dev.txt
if [[ ${SKIP_SAM:-} != 1 ]]; then venv .venv-sam requirements-sam.txt; fi

# gotool PACKAGE VERSION [same-go]: go install PACKAGE@VERSION into bin/ unless
# the binary there was built from that module version (go version -m reads
# it from the binary). With same-go, also rebuild after a Go upgrade:
# staticcheck must be built by a Go at least as new as the code it reads.
gotool() {
  local pkg=$1 version=$2 bin=bin/${1##*/} built=
  if [[ -x $bin ]]; then
    built=$(go version -m "$bin" 2>/dev/null | awk -v go="$(go env GOVERSION)" -v same="${3:-}" \
      'NR == 1 && same != "" && $2 != go { exit } $1 == "mod" { print $3 }')
  fi
  if [[ $built == "$version" ]]; then return; fi
  log "${pkg##*/} $version"
  GOBIN=$ROOT/bin go install "$pkg@$version"
}

gotool github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie "$RIE_VERSION"
gotool honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION" same-go

# npm ci again only when the lockfile's content changed since the last
# install (a copy is kept in node_modules): a checkout or rebase that only
# touches the file's time does not reinstall.
for lock in $(git ls-files '*package-lock.json' 2>/dev/null || true); do
  dir=$(dirname "$lock")
  if cmp -s "$lock" "$dir/node_modules/.setup-installed-lock.json"; then continue; fi
  log "npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$dir/node_modules/.setup-installed-lock.json"
done

# Java: the example function, built with Maven (pinned, Maven Central only,
# project-local .m2/) by a JDK >= 21; bin/java-home points at that JDK for
# the e2e stand-in runtime. Rebuilt only when its sources change.
ln -sfn "$(bash scripts/build-java.sh --java-home)" bin/java-home
java_sum=$(cat examples/java/pom.xml $(find examples/java/src -type f | sort) | sha256sum | cut -d' ' -f1)
if [[ $(cat examples/java/target/.built 2>/dev/null) != "$java_sum" ]]; then
  log "examples/java (Maven, JDK $(readlink bin/java-home))"
  bash scripts/build-java.sh
  echo "$java_sum" >examples/java/target/.built
fi

go mod download
log "ready"
