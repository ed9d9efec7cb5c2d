package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The checks on the real artifacts, which scripts/check-packaging.sh builds
// first (sam build for both architectures, sam validate --lint, make layer)
// before it runs these tests with:
const (
	// envPackaging=1 turns these tests on; without it they skip.
	envPackaging = "CREDENTIAL_REFRESH_PACKAGING"
	// envOutboundLog names the trapproxy log of the SAM commands.
	envOutboundLog = "CREDENTIAL_REFRESH_PACKAGING_OUTBOUND_LOG"
	// envImage names the OCI layout `make image` wrote from the trees the
	// zips hold (build/credential-refresh-image).
	envImage = "CREDENTIAL_REFRESH_PACKAGING_IMAGE"
)

// samBuildDirs are where scripts/check-packaging.sh has sam build write,
// per architecture.
var samBuildDirs = map[string]string{"x86_64": ".aws-sam/build", "arm64": ".aws-sam/build-arm64"}

// samVersionCheck is the one request the trap may see: SAM CLI asks PyPI
// for a newer version of itself once a week (samcli/lib/utils/
// version_checker.py, which has no switch to turn it off), and the script
// gives SAM a fresh state directory, so the first command asks. The trap
// refuses it like any other, so nothing leaves the machine.
const samVersionCheck = "CONNECT pypi.org:443"

// gate skips t unless the artifacts were built, and returns the repository
// root. When the tests are on, anything missing is a failure.
func gate(t *testing.T) string {
	t.Helper()
	if os.Getenv(envPackaging) != "1" {
		t.Skipf("packaging checks of the built artifacts: scripts/check-packaging.sh runs them (%s=1)", envPackaging)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func report(t *testing.T, p problems) {
	t.Helper()
	for _, msg := range p {
		t.Error(msg)
	}
}

func TestLayerZips(t *testing.T) {
	root := gate(t)
	src := sourceLayer(t)
	for _, arch := range []string{"x86_64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			zipPath := filepath.Join(root, "build", "credential-refresh-layer-"+arch+".zip")
			var p problems
			p.checkLayerZip(zipPath, arch, src, maxZipBytes)
			// What Lambda does with the zip: unpack it into /opt. The modes
			// must survive that, not only sit in the zip's headers.
			dir := t.TempDir()
			if out, err := exec.Command("unzip", "-q", zipPath, "-d", dir).CombinedOutput(); err != nil {
				p.addf("unzip %s: %v\n%s", zipPath, err, out)
			} else {
				p.checkLayerTree(dir, "unzip "+filepath.Base(zipPath), arch, src)
			}
			report(t, p)
		})
	}
}

// TestImage: the OCI image `make image` wrote holds, for each platform,
// exactly its zip's files under /opt (see checkImageIndex, checkImage).
func TestImage(t *testing.T) {
	root := gate(t)
	dir := os.Getenv(envImage)
	if dir == "" {
		t.Fatalf("%s is not set: scripts/check-packaging.sh runs make image and names its OCI layout there", envImage)
	}
	var p problems
	index := p.checkImageIndex(dir)
	report(t, p)
	if index == nil {
		t.FailNow()
	}
	for _, arch := range []string{"x86_64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			var p problems
			p.checkImage(dir, index, arch, filepath.Join(root, "build", "credential-refresh-layer-"+arch+".zip"), maxZipBytes)
			report(t, p)
		})
	}
}

func TestSAMBuild(t *testing.T) {
	root := gate(t)
	src := sourceLayer(t)
	want, err := templateFunctions(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 4 {
		t.Fatalf("template.yaml has functions %q, want at least the 4 examples (Go, Python, Node, Java)", want)
	}
	for _, arch := range []string{"x86_64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			build := filepath.Join(root, samBuildDirs[arch])
			var p problems
			p.checkLayerTree(filepath.Join(build, "CredentialRefreshLayer"), samBuildDirs[arch]+"/CredentialRefreshLayer", arch, src)
			report(t, p)
			fns, err := builtFunctions(filepath.Join(build, "template.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, fn := range fns {
				got = append(got, fn.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("the built template has functions %q, want template.yaml's %q", got, want)
			}
			for _, fn := range fns {
				t.Run(fn.ID, func(t *testing.T) { report(t, checkFunction(root, build, fn, arch)) })
			}
		})
	}
}

// function is one AWS::Serverless::Function of a built template.
type function struct {
	ID                        string
	Runtime, Handler, CodeUri string
}

// builtFunctions reads the functions of a template that sam build wrote,
// with the Globals applied. SAM writes plain values for the three fields;
// a short-form tag (!Ref) there would read as "" and fail the checks.
func builtFunctions(path string) ([]function, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type props struct {
		Runtime string `yaml:"Runtime"`
		Handler string `yaml:"Handler"`
		CodeUri string `yaml:"CodeUri"`
	}
	var tmpl struct {
		Globals struct {
			Function props `yaml:"Function"`
		} `yaml:"Globals"`
		Resources map[string]struct {
			Type       string    `yaml:"Type"`
			Properties yaml.Node `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var fns []function
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		fn := function{ID: id, Runtime: tmpl.Globals.Function.Runtime, Handler: tmpl.Globals.Function.Handler, CodeUri: tmpl.Globals.Function.CodeUri}
		var own props
		if err := r.Properties.Decode(&own); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, id, err)
		}
		fn.Runtime = cmpOr(own.Runtime, fn.Runtime)
		fn.Handler = cmpOr(own.Handler, fn.Handler)
		fn.CodeUri = cmpOr(own.CodeUri, fn.CodeUri)
		fns = append(fns, fn)
	}
	slices.SortFunc(fns, func(a, b function) int { return strings.Compare(a.ID, b.ID) })
	return fns, nil
}

// templateFunctions returns the logical IDs of the functions of a source
// template, sorted. Only the resources' types are read, so the short-form
// tags (!Ref, !GetAtt) elsewhere do not matter.
func templateFunctions(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tmpl struct {
		Resources map[string]struct {
			Type string `yaml:"Type"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ids []string
	for id, r := range tmpl.Resources {
		if r.Type == "AWS::Serverless::Function" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkFunction checks one built function the way its runtime will load
// it: a provided.* bootstrap is an ELF for arch; a Python or Node handler
// is imported from the artifact alone (its dependencies must resolve there,
// as in Lambda) and must export the handler function; a Java handler's
// class is read from the artifact (checkJava). Any other runtime fails.
func checkFunction(root, build string, fn function, arch string) problems {
	var p problems
	dir := filepath.Join(build, fn.ID)
	if fn.CodeUri != fn.ID {
		p.addf("%s: built template CodeUri is %q, want the built directory %s", fn.ID, fn.CodeUri, fn.ID)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		p.addf("%s: built directory %s is missing or empty (%v)", fn.ID, dir, err)
		return p
	}
	module, handler, _ := strings.Cut(fn.Handler, ".")
	var cmd *exec.Cmd
	switch {
	case strings.HasPrefix(fn.Runtime, "provided"):
		path := filepath.Join(dir, "bootstrap")
		f, err := os.Open(path)
		if err != nil {
			p.addf("%s: %v", fn.ID, err)
			return p
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			p.addf("%s: %v", fn.ID, err)
			return p
		}
		p.checkELF(fn.ID+"/bootstrap", f, st.Mode(), arch)
		return p
	case strings.HasPrefix(fn.Runtime, "java"):
		p.checkJava(fn.ID+" ("+fn.Runtime+")", dir, fn.Runtime, fn.Handler)
		return p
	case strings.HasPrefix(fn.Runtime, "python"):
		if _, err := os.Stat(filepath.Join(dir, module+".py")); err != nil {
			p.addf("%s (%s): no %s.py in %s", fn.ID, fn.Runtime, module, dir)
			return p
		}
		// boto3 is in the Lambda runtime; here it comes from .venv.
		cmd = exec.Command(filepath.Join(root, ".venv", "bin", "python"), "-c",
			"import importlib, sys; m = importlib.import_module(sys.argv[1]); sys.exit(not callable(getattr(m, sys.argv[2], None)))",
			module, handler)
		cmd.Env = append(os.Environ(), "PYTHONPATH=.")
	case strings.HasPrefix(fn.Runtime, "nodejs"):
		file := ""
		for _, ext := range []string{".mjs", ".js", ".cjs"} {
			if _, err := os.Stat(filepath.Join(dir, module+ext)); err == nil {
				file = filepath.Join(dir, module+ext)
				break
			}
		}
		if file == "" {
			p.addf("%s (%s): no %s.mjs, .js or .cjs in %s", fn.ID, fn.Runtime, module, dir)
			return p
		}
		cmd = exec.Command("node", "--input-type=module", "-e",
			"const m = await import(process.argv[1]); process.exit(typeof m[process.argv[2]] === 'function' ? 0 : 1)",
			file, handler)
		cmd.Env = os.Environ()
	default:
		p.addf("%s: no packaging check for runtime %q", fn.ID, fn.Runtime)
		return p
	}
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, "AWS_REGION=us-east-1")
	if out, err := cmd.CombinedOutput(); err != nil {
		p.addf("%s (%s): %s does not load from the artifact or does not export %s: %v\n%s", fn.ID, fn.Runtime, module, handler, err, out)
	}
	return p
}

// TestSamconfig: `sam build` and `sam deploy --guided` work from
// samconfig.toml's defaults. Python's tomllib reads the TOML.
func TestSamconfig(t *testing.T) {
	root := gate(t)
	out, err := exec.Command("python3", "-c",
		"import json, sys, tomllib; json.dump(tomllib.load(open(sys.argv[1], 'rb')), sys.stdout)",
		filepath.Join(root, "samconfig.toml")).Output()
	if err != nil {
		t.Fatalf("read samconfig.toml: %v", err)
	}
	var c struct {
		Default struct {
			Global struct {
				Parameters struct {
					StackName string `json:"stack_name"`
				} `json:"parameters"`
			} `json:"global"`
			Build struct {
				Parameters struct {
					BuildInSource bool `json:"build_in_source"`
				} `json:"parameters"`
			} `json:"build"`
			Deploy struct {
				Parameters struct {
					Capabilities     any  `json:"capabilities"` // "A B" or ["A", "B"]
					ResolveS3        bool `json:"resolve_s3"`
					ConfirmChangeset bool `json:"confirm_changeset"`
				} `json:"parameters"`
			} `json:"deploy"`
		} `json:"default"`
	}
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	d := c.Default
	var caps []string
	switch v := d.Deploy.Parameters.Capabilities.(type) {
	case string:
		caps = strings.Fields(v)
	case []any:
		for _, s := range v {
			caps = append(caps, fmt.Sprint(s))
		}
	}
	for _, want := range []string{"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"} {
		if !slices.Contains(caps, want) {
			t.Errorf("deploy capabilities %q lack %s", caps, want)
		}
	}
	if !d.Deploy.Parameters.ResolveS3 {
		t.Error("deploy resolve_s3 is not true")
	}
	if !d.Deploy.Parameters.ConfirmChangeset {
		t.Error("deploy confirm_changeset is not true")
	}
	if d.Global.Parameters.StackName == "" {
		t.Error("no stack_name")
	}
	if !d.Build.Parameters.BuildInSource {
		t.Error("build build_in_source is not true")
	}
}

// TestHelpersMatchMakefile: the helpers these checks expect are the ones
// the Makefile's HELPERS copies into the layer, and every file git tracks
// under layer/python and layer/nodejs is one of them (a new helper must be
// listed in both places, or the layer would ship without it).
func TestHelpersMatchMakefile(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "--no-print-directory", "-C", root, "-f", "Makefile",
		"--eval", "print-helpers: ; @echo $(HELPERS)", "print-helpers").Output()
	if err != nil {
		t.Fatalf("make print-helpers: %v", err)
	}
	want := slices.Sorted(slices.Values(helperPaths))
	if got := slices.Sorted(slices.Values(strings.Fields(string(out)))); !slices.Equal(got, want) {
		t.Errorf("the Makefile's HELPERS are %q, the packaging checks expect %q", got, want)
	}
	out, err = exec.Command("git", "-C", root, "ls-files", "--", "layer/python", "layer/nodejs").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if rel := strings.TrimPrefix(f, "layer/"); !isHelper(rel) {
			t.Errorf("git tracks %s, which is not among the helpers the layer ships (Makefile HELPERS, packaging helperPaths)", f)
		}
	}
}

// TestWrapperModeInGit: a checkout must give the wrapper its executable
// bits, or every zip built from it loses them.
func TestWrapperModeInGit(t *testing.T) {
	root := gate(t)
	rel := "layer/" + wrapperPath
	out, err := exec.Command("git", "-C", root, "ls-files", "-s", rel).Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	if fields := strings.Fields(string(out)); len(fields) > 0 {
		if fields[0] != "100755" {
			t.Errorf("git records %s as %s, want 100755", rel, fields[0])
		}
		return
	}
	// Not yet in git: the file itself.
	st, err := os.Stat(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	var p problems
	p.checkExecutable(rel, st.Mode())
	report(t, p)
}

// TestNoOutboundConnection: SAM and every tool it ran tried to reach no
// other network than the package registries the builds need (which the
// script lets through), SAM_CLI_TELEMETRY=0 and no Docker.
func TestNoOutboundConnection(t *testing.T) {
	gate(t)
	path := os.Getenv(envOutboundLog)
	if path == "" {
		t.Fatalf("%s is not set: scripts/check-packaging.sh runs SAM through packaging/trapproxy and names its log there", envOutboundLog)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var other []string
	versionChecks := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		switch line {
		case "":
		case samVersionCheck:
			versionChecks++
		default:
			other = append(other, line)
		}
	}
	if len(other) > 0 {
		t.Errorf("SAM or its tools tried to reach the network (refused by the trap):\n%s", strings.Join(other, "\n"))
	}
	if versionChecks > 1 {
		t.Errorf("SAM checked for a newer version %d times, want at most once per state directory", versionChecks)
	}
}
