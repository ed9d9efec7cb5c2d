#!/usr/bin/env bash
# Packaging checks, run by scripts/test.sh after scripts/setup.sh:
#   1. the real SAM CLI builds the layer and every function of template.yaml,
#      for x86_64 and for arm64, without Docker and without phoning home;
#   2. the built trees hold what Lambda needs (ELF of the right machine,
#      executable bits, handlers);
#   3. sam validate --lint passes and samconfig.toml has working defaults;
#   4. make layer writes both zips: right ELF machine, executable bits kept,
#      at most 6 MB each, with the helpers;
#   5. make image writes the OCI image of the same trees: an OCI index with
#      linux/amd64 and linux/arm64, each holding exactly its zip's files
#      under /opt, byte for byte.
# Ends with "packaging: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SAM=$ROOT/.venv-sam/bin/sam
SAM_PY=$ROOT/.venv-sam/bin/python
MAX_ZIP_BYTES=6000000 # "6 MB", read strictly

passed=0
failed=0
pass() { passed=$((passed + 1)); printf '  ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...: pass if COMMAND succeeds
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
summary() {
	printf 'packaging: %d passed, %d failed\n' "$passed" "$failed"
	[[ $failed -eq 0 ]]
}
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

if [[ ! -x $SAM ]]; then
	fail "SAM CLI at .venv-sam/bin/sam (run scripts/setup.sh)"
	summary
	exit 1
fi

WORK=$(mktemp -d)
TRAP_PID=
cleanup() {
	if [[ -n $TRAP_PID ]]; then kill "$TRAP_PID" 2>/dev/null; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- An outbound-connection trap ------------------------------------------
# Every HTTP(S) connection SAM (or a tool it runs) makes goes through this
# proxy, which records the target and refuses it. Only the package
# registries the builds may need go direct (NO_PROXY): npm's registry for
# the Node example, Go's module proxy and checksum database.
cat >"$WORK/trap.py" <<'PY'
import http.server, socketserver, sys
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def refuse(self):
        log.write(f"{self.command} {self.path}\n")
        self.send_error(403, "blocked by check-packaging")
    do_CONNECT = do_GET = do_POST = do_PUT = do_HEAD = refuse
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
: >"$WORK/outbound.log"
python3 "$WORK/trap.py" "$WORK/outbound.log" >"$WORK/trap.port" &
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
	# SAM's own state (metadata.json) in a private directory, not ~/.aws-sam.
	# (__SAM_CLI_APP_DIR is the variable SAM's own integration tests use.)
	__SAM_CLI_APP_DIR="$WORK/sam-app-dir"
)
# sam build and sam validate ask the Python package index for a newer SAM CLI once a week and
# have no switch to turn that off. Record "checked just now", as SAM itself
# does after a check, so that only a real phone-home reaches the trap.
mkdir -p "$WORK/sam-app-dir"
python3 -c 'import json, sys, time; json.dump({"telemetryEnabled": False, "lastVersionCheck": time.time()}, open(sys.argv[1], "w"))' \
	"$WORK/sam-app-dir/metadata.json"

# --- Inspect built artifacts (one python program, fed a list of checks) -----
# artifacts.py prints "ok <what>" / "FAIL <what>" lines.
cat >"$WORK/artifacts.py" <<'PY'
import os, stat, struct, sys, zipfile
MACHINES = {62: "x86_64", 183: "arm64"}

def elf_info(data):
    """(machine, static) of an ELF image, or raise ValueError."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ValueError("not 64-bit little-endian ELF")
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    interp = any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))
    return MACHINES.get(machine, f"e_machine={machine}"), not interp

def report(ok, what):
    print(("ok " if ok else "FAIL ") + what)

def check_elf(name, data, mode, arch):
    try:
        machine, static = elf_info(data)
    except ValueError as e:
        return report(False, f"{name}: {e}")
    report(machine == arch, f"{name}: ELF {machine}, want {arch}")
    report(static, f"{name}: statically linked (no ELF interpreter)")
    report(mode & 0o111 == 0o111, f"{name}: mode {mode & 0o777:o} is executable")

# The in-layer helpers (Python and Node packages), as paths under layer/
# and in the layer; the Makefile's HELPERS lists the same files.
HELPERS = [
    "python/credential_refresh/__init__.py",
    "nodejs/node_modules/credential-refresh/package.json",
    "nodejs/node_modules/credential-refresh/index.js",
    "nodejs/node_modules/credential-refresh/index.mjs",
    "nodejs/node_modules/credential-refresh/index.d.ts",
]
TOP = ["credential-refresh", "extensions", "nodejs", "python"]

def check_helper(name, data, mode, rel):
    report(mode & 0o444 == 0o444, f"{name}: mode {mode & 0o777:o} is readable by all (uid 993 on Managed Instances)")
    report(data == open(os.path.join("layer", rel), "rb").read(), f"{name} is layer/{rel}")

def tree(root, arch, wrapper_src, label):
    """A built layer tree (sam build) or an unpacked zip, named label."""
    want = {"extensions/credential-refresh": "elf", "credential-refresh/exec-wrapper": "wrapper"}
    want.update({h: "helper" for h in HELPERS})
    for rel, kind in want.items():
        p, name = os.path.join(root, rel), f"{label}/{rel}"
        if not os.path.isfile(p):
            report(False, f"{name} exists")
        elif kind == "elf":
            check_elf(name, open(p, "rb").read(), os.stat(p).st_mode, arch)
        elif kind == "helper":
            check_helper(name, open(p, "rb").read(), os.stat(p).st_mode, rel)
        else:
            mode = os.stat(p).st_mode
            report(mode & 0o111 == 0o111, f"{name}: mode {mode & 0o777:o} is executable")
            report(open(p, "rb").read() == open(wrapper_src, "rb").read(), f"{name} is {wrapper_src}")
    top = sorted(os.listdir(root))
    report(top == TOP, f"{label} holds only {', '.join(t + '/' for t in TOP)} (has {top})")
    found = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    report(found == sorted(want), f"{label} holds exactly the extension, the wrapper and the helpers (has {found})")

def layer_zip(path, arch, wrapper_src, max_bytes):
    size = os.path.getsize(path)
    report(size <= max_bytes, f"{os.path.basename(path)}: {size} bytes ({size / 1e6:.2f} MB) <= {max_bytes / 1e6:g} MB")
    with zipfile.ZipFile(path) as z:
        report(z.testzip() is None, f"{os.path.basename(path)}: CRCs verify")
        files = {i.filename: i for i in z.infolist() if not i.is_dir()}
        want = {"extensions/credential-refresh", "credential-refresh/exec-wrapper", *HELPERS}
        report(set(files) == want, f"{os.path.basename(path)}: holds exactly {sorted(want)} (has {sorted(files)})")
        for name, info in files.items():
            mode = info.external_attr >> 16
            report(info.create_system == 3 and stat.S_ISREG(mode), f"{os.path.basename(path)}:{name}: unix regular file entry")
            data = z.read(info)
            if name == "extensions/credential-refresh":
                check_elf(f"{os.path.basename(path)}:{name}", data, mode, arch)
            elif name == "credential-refresh/exec-wrapper":
                report(mode & 0o111 == 0o111, f"{os.path.basename(path)}:{name}: mode {mode & 0o777:o} is executable")
                report(data == open(wrapper_src, "rb").read(), f"{os.path.basename(path)}:{name} is the source wrapper")
            elif name in HELPERS:
                check_helper(f"{os.path.basename(path)}:{name}", data, mode, name)

def layer_image(layout, arch, zip_path, max_bytes):
    """The image for arch in the OCI layout must hold exactly the zip's files
    under /opt, byte for byte and mode for mode (the same binaries)."""
    import gzip, hashlib, io, json, tarfile
    goarch = {"x86_64": "amd64", "arm64": "arm64"}[arch]
    blob = lambda d: open(os.path.join(layout, "blobs", *d.split(":")), "rb").read()
    def verified(desc):
        data = blob(desc["digest"])
        ok = hashlib.sha256(data).hexdigest() == desc["digest"].split(":")[1] and len(data) == desc["size"]
        return data, ok
    top = json.load(open(os.path.join(layout, "index.json")))
    idx_data, ok = verified(top["manifests"][0])
    idx = json.loads(idx_data)
    report(ok and idx.get("mediaType") == "application/vnd.oci.image.index.v1+json", f"image: index is an OCI image index, digest verified")
    found = [m for m in idx["manifests"] if m.get("platform", {}).get("architecture") == goarch]
    report(len(found) == 1, f"image: one linux/{goarch} manifest in the index")
    if not found:
        return
    man_data, ok = verified(found[0])
    man = json.loads(man_data)
    cfg_data, cok = verified(man["config"])
    cfg = json.loads(cfg_data)
    report(ok and cok and man["mediaType"] == "application/vnd.oci.image.manifest.v1+json" and (cfg["os"], cfg["architecture"]) == ("linux", goarch),
           f"image linux/{goarch}: OCI manifest and config for linux/{cfg.get('architecture')}, digests verified")
    files, size = {}, len(man_data) + len(cfg_data)
    for l in man["layers"]:
        data, lok = verified(l)
        size += len(data)
        report(lok and l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", f"image linux/{goarch}: layer {l['digest'][:19]} is OCI tar+gzip, digest verified")
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as t:
            bad = [m.name for m in t.getmembers() if not (m.uid == 0 and m.gid == 0 and (m.isdir() or m.isfile())
                                                           and (m.name == "opt" or m.name.startswith("opt/")))]
            report(not bad, f"image linux/{goarch}: every layer entry is a root-owned file or directory under /opt (others: {bad})")
            for m in t.getmembers():
                if m.isfile():
                    files[m.name[len("opt/"):]] = (m.mode & 0o777, t.extractfile(m).read())
    with zipfile.ZipFile(zip_path) as z:
        zfiles = {i.filename: ((i.external_attr >> 16) & 0o777, z.read(i)) for i in z.infolist() if not i.is_dir()}
    report(sorted(files) == sorted(zfiles), f"image linux/{goarch} holds the files of {os.path.basename(zip_path)} under /opt ({len(files)} files)")
    for name in sorted(set(files) & set(zfiles)):
        report(files[name] == zfiles[name], f"image linux/{goarch}: /opt/{name} is the zip's, byte for byte, mode {files[name][0]:o}")
    report(size <= max_bytes, f"image linux/{goarch}: {size} bytes ({size / 1e6:.2f} MB: manifest, config, gzip layer) <= {max_bytes / 1e6:g} MB")

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "tree":
    tree(*args)
elif cmd == "zip":
    layer_zip(args[0], args[1], args[2], int(args[3]))
elif cmd == "image":
    layer_image(args[0], args[1], args[2], int(args[3]))
elif cmd == "elf":
    p, arch = args
    check_elf(p, open(p, "rb").read(), os.stat(p).st_mode, arch)
PY

# Functions of a built template: "LogicalId<TAB>Runtime<TAB>Handler<TAB>CodeUri"
# (the SAM CLI's own YAML loader reads the !Ref/!GetAtt short forms).
cat >"$WORK/functions.py" <<'PY'
import sys
from samcli.yamlhelper import yaml_parse
t = yaml_parse(open(sys.argv[1]).read())
g = (t.get("Globals") or {}).get("Function") or {}
for lid, r in sorted(t["Resources"].items()):
    if r.get("Type") == "AWS::Serverless::Function":
        p = r.get("Properties") or {}
        print("\t".join([lid] + [str(p.get(k, g.get(k, ""))) for k in ("Runtime", "Handler", "CodeUri")]))
PY

run_inspect() { # run_inspect ARGS...: turn artifacts.py's lines into pass/fail
	local line
	while IFS= read -r line; do
		case $line in
		"ok "*) pass "${line#ok }" ;;
		"FAIL "*) fail "${line#FAIL }" ;;
		*) fail "inspect: $line" ;;
		esac
	done < <(python3 "$WORK/artifacts.py" "$@" 2>&1)
}

# check_function BUILD_DIR LOGICAL_ID RUNTIME HANDLER CODEURI ARCH
check_function() {
	local dir=$1/$2 runtime=$3 handler=$4 codeuri=$5 arch=$6
	if [[ $codeuri != "$2" ]]; then
		fail "$2: built template CodeUri is '$codeuri', want the built directory $2"
	fi
	if [[ ! -d $dir ]] || [[ -z $(ls -A "$dir") ]]; then
		fail "$2: built directory $dir is missing or empty"
		return
	fi
	local module=${handler%.*} fn=${handler##*.} file=
	case $runtime in
	provided*)
		run_inspect elf "$dir/bootstrap" "$arch"
		return
		;;
	python*)
		file=$dir/$module.py
		# Import it as the runtime would, from the artifact alone (boto3 is
		# in the Lambda runtime; here it comes from .venv).
		loads() {
			(cd "$dir" && AWS_REGION=us-east-1 PYTHONPATH=. "$ROOT/.venv/bin/python" -c \
				"import importlib, sys; m = importlib.import_module(sys.argv[1]); sys.exit(not callable(getattr(m, sys.argv[2], None)))" \
				"$module" "$fn")
		}
		;;
	nodejs*)
		for file in "$dir/$module".{mjs,js,cjs}; do [[ -f $file ]] && break; done
		# Import it from the artifact: its dependencies must resolve from
		# the artifact's node_modules, as they will in Lambda.
		loads() {
			AWS_REGION=us-east-1 node --input-type=module -e \
				"const m = await import(process.argv[1]); process.exit(typeof m[process.argv[2]] === 'function' ? 0 : 1)" \
				"$(realpath "$file")" "$fn"
		}
		;;
	java*)
		# The java21 layout: the handler's class at the top (class file
		# version 65 = Java 21, what the runtime runs) and lib/ with the SDK.
		local class
		class=$dir/$(echo "${handler%%::*}" | tr . /).class
		if [[ -f $class ]] && [[ $(od -An -j6 -N2 -tu1 "$class" | awk '{print $1 * 256 + $2}') == 65 ]]; then
			pass "$2 ($runtime): ${class#"$dir"/} is a Java 21 class file"
		else
			fail "$2 ($runtime): ${class#"$dir"/} missing or not Java 21 (class file version 65)"
		fi
		check "$2 ($runtime): lib/ holds the AWS SDK for Java v2 (s3, url-connection-client) and no runtime interface client" \
			bash -c 'ls "$1"/lib/s3-*.jar "$1"/lib/url-connection-client-*.jar >/dev/null 2>&1 && ! ls "$1"/lib/aws-lambda-java-runtime-interface-client-*.jar >/dev/null 2>&1' _ "$dir"
		return
		;;
	*)
		fail "$2: no packaging check for runtime $runtime"
		return
		;;
	esac
	if [[ ! -f $file ]]; then
		fail "$2 ($runtime): no $module source file in $dir"
	elif loads >"$WORK/load.log" 2>&1; then
		pass "$2 ($runtime): ${file#"$ROOT"/} loads from the artifact and exports $fn"
	else
		fail "$2 ($runtime): ${file#"$ROOT"/} does not load or lacks $fn:"
		sed 's/^/        /' "$WORK/load.log" | tail -10
	fi
}

# sam_build ARCH(amd64|arm64) BUILD_DIR [EXTRA SAM ARGS]
# Without extra arguments the rest comes from samconfig.toml (build_in_source,
# Architecture=x86_64), which this also proves.
sam_build() {
	local goarch=$1 dir=$2 lambda_arch t0
	shift 2
	lambda_arch=$([[ $goarch == arm64 ]] && echo arm64 || echo x86_64)
	echo "== sam build ($lambda_arch) -> $dir"
	rm -rf "$dir"
	t0=$(now)
	if ARCH=$goarch "${sam_env[@]}" "$SAM" build --template template.yaml --build-dir "$dir" "$@" \
		>"$WORK/sam-build-$goarch.log" 2>&1; then
		pass "sam build ($lambda_arch) in $(since "$t0")"
	else
		fail "sam build ($lambda_arch); its output:"
		sed 's/^/        /' "$WORK/sam-build-$goarch.log" | tail -40
		return
	fi
	run_inspect tree "$dir/CredentialRefreshLayer" "$lambda_arch" layer/credential-refresh/exec-wrapper "$dir/CredentialRefreshLayer"
	local n=0 lid runtime handler codeuri
	while IFS=$'\t' read -r lid runtime handler codeuri; do
		n=$((n + 1))
		check_function "$dir" "$lid" "$runtime" "$handler" "$codeuri" "$lambda_arch"
	done < <(PYTHONPATH= "$SAM_PY" "$WORK/functions.py" "$dir/template.yaml")
	check "sam build ($lambda_arch): template has the 4 example functions (found $n)" test "$n" -ge 4
}

echo "== packaging checks (network through a trap proxy; direct only: $direct)"
sam_build amd64 .aws-sam/build
sam_build arm64 .aws-sam/build-arm64 --build-in-source --parameter-overrides Architecture=arm64

echo "== sam validate --lint"
t0=$(now)
if "${sam_env[@]}" "$SAM" validate --lint --template template.yaml --region us-east-1 >"$WORK/validate.log" 2>&1; then
	pass "sam validate --lint in $(since "$t0")"
else
	fail "sam validate --lint:"
	sed 's/^/        /' "$WORK/validate.log"
fi

echo "== samconfig.toml"
samconfig_ok() {
	python3 - <<'PY'
import sys, tomllib
c = tomllib.load(open("samconfig.toml", "rb"))["default"]
dep, build = c["deploy"]["parameters"], c["build"]["parameters"]
problems = []
caps = dep.get("capabilities", "")
caps = caps.split() if isinstance(caps, str) else caps
for cap in ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"):
    if cap not in caps: problems.append(f"deploy capabilities lack {cap}")
if dep.get("resolve_s3") is not True: problems.append("deploy resolve_s3 is not true")
if dep.get("confirm_changeset") is not True: problems.append("deploy confirm_changeset is not true")
if not c["global"]["parameters"].get("stack_name"): problems.append("no stack_name")
if build.get("build_in_source") is not True: problems.append("build build_in_source is not true")
for p in problems: print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}
check "samconfig.toml: stack name, IAM capabilities, resolve_s3, confirm_changeset, build_in_source" samconfig_ok

echo "== make layer"
t0=$(now)
if make --no-print-directory layer >"$WORK/make-layer.log" 2>&1; then
	pass "make layer in $(since "$t0")"
else
	fail "make layer:"
	sed 's/^/        /' "$WORK/make-layer.log"
fi
for arch in x86_64 arm64; do
	z=build/credential-refresh-layer-$arch.zip
	if [[ -f $z ]]; then
		run_inspect zip "$z" "$arch" layer/credential-refresh/exec-wrapper "$MAX_ZIP_BYTES"
		mkdir -p "$WORK/unzip-$arch"
		# What Lambda does with the zip: unpack it to /opt.
		if unzip -q "$z" -d "$WORK/unzip-$arch"; then
			run_inspect tree "$WORK/unzip-$arch" "$arch" layer/credential-refresh/exec-wrapper "unzip $z"
		else
			fail "unzip $z"
		fi
	else
		fail "$z exists"
	fi
done

echo "== make image (OCI, from the trees the zips hold)"
t0=$(now)
if make --no-print-directory image >"$WORK/make-image.log" 2>&1; then
	pass "make image in $(since "$t0")"
	for arch in x86_64 arm64; do
		run_inspect image build/credential-refresh-image "$arch" build/credential-refresh-layer-$arch.zip "$MAX_ZIP_BYTES"
	done
else
	fail "make image:"
	sed 's/^/        /' "$WORK/make-image.log"
fi

echo "== source tree"
mode=$(git ls-files -s layer/credential-refresh/exec-wrapper 2>/dev/null | cut -d' ' -f1)
if [[ -n $mode ]]; then
	check "git records layer/credential-refresh/exec-wrapper as 100755 (is $mode)" test "$mode" = 100755
else
	check "layer/credential-refresh/exec-wrapper is executable (not yet in git)" test -x layer/credential-refresh/exec-wrapper
fi

echo "== outbound connections"
if [[ -s $WORK/outbound.log ]]; then
	fail "SAM or its tools tried to reach the network through the proxy:"
	sed 's/^/        /' "$WORK/outbound.log"
else
	pass "no outbound connection attempted (SAM_CLI_TELEMETRY=0, no Docker)"
fi

echo "== sizes"
for arch in x86_64 arm64; do
	z=build/credential-refresh-layer-$arch.zip
	[[ -f $z ]] && printf '  %-45s %8d bytes  (%s)\n' "$z" "$(stat -c %s "$z")" "$(du -h "$z" | cut -f1)"
	b=build/layer-$arch/extensions/credential-refresh
	[[ -f $b ]] && printf '  %-45s %8d bytes\n' "$b" "$(stat -c %s "$b")"
done

summary
