package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// FreePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// could take it before it is used; with distinct ports per scenario in one
// test process that has not been a problem.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not on PATH: %w", name, err)
	}
	return p, nil
}
