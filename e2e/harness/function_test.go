package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFunctionUnderRIE checks the RIE runner on its own, with an empty
// layer and an echo function on the stand-in Node runtime: invokes are
// answered, the runtime process survives warm invokes, freeze/thaw works,
// and SIGTERM ends everything with exit 0 and no leftover processes.
func TestFunctionUnderRIE(t *testing.T) {
	tools := Gate(t)
	ctx := context.Background()
	dir := t.TempDir()
	layer, task := filepath.Join(dir, "layer"), filepath.Join(dir, "task")
	for _, d := range []string{layer, task} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	echo := `export const handler = async (event) => ({ echo: event, pid: process.pid });`
	if err := os.WriteFile(filepath.Join(task, "index.mjs"), []byte(echo), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := StartFunction(ctx, FunctionSpec{
		Tools: tools, LayerDir: layer, TaskDir: task,
		Command: []string{filepath.Join(tools.Root, "e2e", "runtimes", "node", "bootstrap"), "index.handler"},
		Env:     []string{"PATH=" + os.Getenv("PATH"), "AWS_LAMBDA_FUNCTION_TIMEOUT=10"},
		LogPath: filepath.Join(dir, "rie.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var pids []string
	for i := range 3 {
		inv, err := f.Invoke(ctx, []byte(`{"n":1}`))
		if err != nil || !strings.Contains(string(inv.Body), `"echo":{"n":1}`) {
			t.Fatalf("invoke %d: %v %s\n%s", i, err, inv.Body, f.Output())
		}
		pids = append(pids, string(inv.Body[strings.Index(string(inv.Body), `"pid"`):]))
		if i == 1 {
			if err := f.Freeze(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			procs := f.Processes()
			if len(procs) == 0 {
				t.Fatal("no processes under RIE")
			}
			for _, p := range procs {
				if q, _ := readProc(p.PID); q.State != 'T' {
					t.Errorf("process %d (%s) state %c after Freeze, want T", p.PID, p.Cmdline, q.State)
				}
			}
			if err := f.Thaw(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if pids[0] != pids[1] || pids[1] != pids[2] {
		t.Errorf("runtime restarted across warm invokes: %v", pids)
	}
	sd, err := f.Stop(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sd.ExitCode != 0 || len(sd.Leftovers) != 0 {
		t.Errorf("shutdown: exit %d, leftovers %v", sd.ExitCode, sd.Leftovers)
	}
}
