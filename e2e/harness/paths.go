package harness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// RepoRoot finds the module root by walking up from the working directory
// to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Tools are the executables that scripts/setup.sh installs project-locally.
type Tools struct {
	Root       string // module root
	MotoServer string // .venv/bin/moto_server
	VenvBin    string // .venv/bin, put first on PATH for the Python runtime
	RIE        string // bin/aws-lambda-rie
	Unshare    string
	Node       string
}

// FindTools locates the tools and reports every missing one in one error,
// naming the command that installs it.
func FindTools(root string) (Tools, error) {
	t := Tools{
		Root:       root,
		MotoServer: filepath.Join(root, ".venv", "bin", "moto_server"),
		VenvBin:    filepath.Join(root, ".venv", "bin"),
		RIE:        filepath.Join(root, "bin", "aws-lambda-rie"),
	}
	var errs []error
	for _, p := range []string{t.MotoServer, t.RIE, filepath.Join(t.VenvBin, "python3")} {
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("%s missing (run scripts/setup.sh): %w", p, err))
		}
	}
	var err error
	if t.Unshare, err = lookPath("unshare"); err != nil {
		errs = append(errs, err)
	}
	if t.Node, err = lookPath("node"); err != nil {
		errs = append(errs, err)
	}
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("RIE runs in a private mount namespace with /opt bind-mounted: run as root"))
	}
	return t, errors.Join(errs...)
}

// FreePort returns a free TCP port on 127.0.0.1 for a server that the
// caller (or a child, such as RIE or the extension) binds a moment later.
// It picks at random below the kernel's ephemeral range (32768-60999 by
// default): a port the kernel picked for ":0" is also one it may give the
// next outgoing connection of any process, and with dozens of environments
// making SDK calls that race was seen to steal an extension's port. It
// checks that nothing listens on the port it returns.
func FreePort() (int, error) {
	const base, span = 20000, 12000
	for range 100 {
		p := base + rand.IntN(span)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("no free port found in 20000-31999")
}

func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not on PATH: %w", name, err)
	}
	return p, nil
}
