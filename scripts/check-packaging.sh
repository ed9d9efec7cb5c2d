#!/usr/bin/env bash
# Packaging checks, run by scripts/test.sh after scripts/setup.sh:
#   1. the real SAM CLI builds the layer and every function of template.yaml,
#      for x86_64 and for arm64, without Docker, every outbound connection
#      going to a trap (packaging/trapproxy) that refuses and records it;
#   2. sam validate --lint passes;
#   3. make image writes both zips (make layer) and the OCI image of the
#      same trees (build/credential-refresh-image);
#   4. go test ./packaging checks what those built, with debug/elf,
#      archive/zip, archive/tar and compress/gzip: ELF machine for the
#      architecture, static linking, executable bits (in the zips and once
#      unzipped), the in-layer helpers readable by all and identical to
#      layer/, exact contents and top level, at most 6 MB per zip; the OCI
#      image index (linux/amd64, linux/arm64, OCI media types, digests),
#      each platform's layer root-owned under /opt and holding exactly its
#      zip's files byte for byte, mode for mode, within 6 MB; each
#      function's handler loads from its artifact (Java: the class file
#      and lib/); samconfig.toml's defaults; the wrapper's mode in git; and
#      that nothing but SAM's own weekly version check tried the network.
# Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SAM=$ROOT/.venv-sam/bin/sam

failed=0
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$*"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

# run LABEL COMMAND...: run it with its output in a log; show the log's end
# if it fails.
run() {
	local label=$1 t0=$EPOCHREALTIME log
	shift
	log=$WORK/$(echo "$label" | tr -c 'a-zA-Z0-9\n' '-').log
	if "$@" >"$log" 2>&1; then
		printf '  ok    %s in %s\n' "$label" "$(since "$t0")"
	else
		fail "$label; its output:"
		sed 's/^/        /' "$log" | tail -40
	fi
}

if [[ ! -x $SAM ]]; then
	fail "SAM CLI at .venv-sam/bin/sam (run scripts/setup.sh)"
	exit 1
fi

WORK=$(mktemp -d)
TRAP_PID=
cleanup() {
	if [[ -n $TRAP_PID ]]; then kill "$TRAP_PID" 2>/dev/null; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- The outbound-connection trap -------------------------------------------
# Every HTTP(S) connection SAM (or a tool it runs) makes goes through it.
# Only the package registries the builds may need go direct (NO_PROXY):
# npm's registry for the Node example, Go's module proxy and checksum
# database.
go build -o "$WORK/trapproxy" ./packaging/trapproxy || exit 1
"$WORK/trapproxy" "$WORK/outbound.log" >"$WORK/trap.port" &
TRAP_PID=$!
for _ in $(seq 50); do [[ -s $WORK/trap.port ]] && break; sleep 0.1; done
TRAP_URL=http://127.0.0.1:$(cat "$WORK/trap.port")

host_of() { sed -E 's#^[a-zA-Z]+://##; s#[/:].*##'; }
direct=127.0.0.1,localhost
direct+=,$(npm config get registry 2>/dev/null | host_of)
for p in $(go env GOPROXY | tr ',|' '  '); do
	case $p in http*) direct+=,$(echo "$p" | host_of) ;; esac
done
direct+=,$(go env GOSUMDB | cut -d' ' -f1 | cut -d+ -f1 | host_of)

sam_env=(
	env
	SAM_CLI_TELEMETRY=0
	# Nothing may need Docker: point it at a socket that does not exist.
	DOCKER_HOST=unix://"$WORK"/no-docker.sock
	HTTP_PROXY="$TRAP_URL" HTTPS_PROXY="$TRAP_URL" http_proxy="$TRAP_URL" https_proxy="$TRAP_URL"
	NO_PROXY="$direct" no_proxy="$direct"
	# SAM's own state (metadata.json) in a fresh private directory, not
	# ~/.aws-sam (__SAM_CLI_APP_DIR is the variable SAM's own integration
	# tests use). SAM then checks PyPI for a newer version once, at its
	# first command; the trap refuses that like anything else, and the
	# Go test allows exactly that one request.
	__SAM_CLI_APP_DIR="$WORK/sam-app-dir"
)

echo "== sam build, sam validate --lint, make image (network through the trap; direct only: $direct)"
# Without extra arguments the x86_64 build takes the rest from samconfig.toml
# (build_in_source, Architecture=x86_64), which this also proves.
rm -rf .aws-sam/build .aws-sam/build-arm64
run "sam build (x86_64)" env ARCH=amd64 "${sam_env[@]}" "$SAM" build --template template.yaml --build-dir .aws-sam/build
run "sam build (arm64)" env ARCH=arm64 "${sam_env[@]}" "$SAM" build --template template.yaml --build-dir .aws-sam/build-arm64 \
	--build-in-source --parameter-overrides Architecture=arm64
run "sam validate --lint" "${sam_env[@]}" "$SAM" validate --lint --template template.yaml --region us-east-1
# make image runs make layer first, so the zips and the image come from the
# same trees, whatever an earlier step left in build/.
run "make image (layer zips, OCI image)" make --no-print-directory image
IMAGE=$ROOT/build/credential-refresh-image

echo "== go test ./packaging (the built artifacts)"
if ! CREDENTIAL_REFRESH_PACKAGING=1 CREDENTIAL_REFRESH_PACKAGING_OUTBOUND_LOG="$WORK/outbound.log" \
	CREDENTIAL_REFRESH_PACKAGING_IMAGE="$IMAGE" go test -count=1 -json ./packaging/ | python3 -u scripts/gotest_summary.py; then
	fail "go test ./packaging"
fi

echo "== outbound attempts the trap refused"
if [[ -s $WORK/outbound.log ]]; then sed 's/^/  /' "$WORK/outbound.log"; else echo "  none"; fi

echo "== sizes"
for arch in x86_64 arm64; do
	z=build/credential-refresh-layer-$arch.zip
	[[ -f $z ]] && printf '  %-45s %8d bytes  (%s)\n' "$z" "$(stat -c %s "$z")" "$(du -h "$z" | cut -f1)"
	b=build/layer-$arch/extensions/credential-refresh
	[[ -f $b ]] && printf '  %-45s %8d bytes\n' "$b" "$(stat -c %s "$b")"
done
a=build/credential-refresh-image.oci.tar
[[ -f $a ]] && printf '  %-45s %8d bytes  (both platforms)\n' "$a" "$(stat -c %s "$a")"

if [[ $failed -gt 0 ]]; then
	echo "packaging: $failed failed"
	exit 1
fi
echo "packaging: all passed"
