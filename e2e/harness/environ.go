package harness

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Environ returns the environment process pid was started with
// (/proc/PID/environ), to check what RIE and the exec wrapper really handed
// a process: a variable present but empty is there with "". Values may be
// secrets: compare them, never print them.
func Environ(pid int) (map[string]string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return nil, fmt.Errorf("environment of %d: %w", pid, err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if k, v, ok := bytes.Cut(kv, []byte("=")); ok {
			env[string(k)] = string(v)
		}
	}
	return env, nil
}
