package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Proc is one process seen in /proc.
type Proc struct {
	PID     int
	PPID    int
	PGID    int
	State   byte   // R, S, T (stopped), Z (zombie), ...
	Exe     string // argv[0]
	Cmdline string // argv joined by spaces
	UID     int    // real uid
}

// readProc reads /proc/PID; ok is false if the process is gone.
func readProc(pid int) (Proc, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Proc{}, false
	}
	// The command name is in parentheses and may contain spaces: split after
	// the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return Proc{}, false
	}
	f := strings.Fields(string(stat[i+2:]))
	if len(f) < 3 {
		return Proc{}, false
	}
	p := Proc{PID: pid, State: f[0][0]}
	p.PPID, _ = strconv.Atoi(f[1])
	p.PGID, _ = strconv.Atoi(f[2])
	raw, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	p.Exe = args[0]
	p.Cmdline = strings.Join(args, " ")
	p.UID = statusUID(pid)
	return p, true
}

// statusUID reads the real uid from /proc/PID/status ("Uid: real eff ...").
func statusUID(pid int) int {
	status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	return -1
}

// allProcs lists every process on the machine.
func allProcs() []Proc {
	ents, _ := os.ReadDir("/proc")
	var ps []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// descendants lists the live descendants of root (not root itself), sorted
// by PID.
func descendants(root int) []Proc {
	children := map[int][]Proc{}
	for _, p := range allProcs() {
		children[p.PPID] = append(children[p.PPID], p)
	}
	var out []Proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.PID)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// alive reports whether pid is a live (non-zombie) process that still runs
// the same command line as p: PIDs are reused.
func alive(p Proc) bool {
	q, ok := readProc(p.PID)
	return ok && q.State != 'Z' && q.Cmdline == p.Cmdline
}

// signalGroup sends sig to the process group pgid, ignoring "no such
// process".
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to group %d: %w", sig, pgid, err)
	}
	return nil
}
