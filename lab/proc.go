package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HelperEnv is set (to "1") in the environment of every lab service the
// lab starts through Config.Helper. A test binary that serves as the
// helper (see package labtest) looks for it; Up refuses to run under it,
// so that a helper can never start labs of its own.
const HelperEnv = "BRAID_LAB_HELPER"

// NameEnv is set to the lab's name in the environment of every process the
// lab starts.
const NameEnv = "BRAID_LAB"

// readyTimeout bounds how long Up waits for a lab service to listen.
const readyTimeout = 10 * time.Second

// procRecord is what the run directory keeps of a started process, in
// procs/<name>.json, so that Down can stop it from any process.
type procRecord struct {
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	Namespace string `json:"namespace"`
	PID       int    `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat (clock ticks after boot): a
	// PID reused by another program has another start time.
	StartTime uint64   `json:"startTime"`
	Args      []string `json:"args"`
	Log       string   `json:"log"`
}

// procsDir is where a lab keeps its process records and logs.
func procsDir(dir string) string { return filepath.Join(dir, "procs") }

// startProcess starts p in namespace ns (through `ip netns exec`, which
// execs in place, so the PID is the program's), detached in its own
// session with its output in a log file, records it, and for a lab service
// waits until it reports that it listens.
func startProcess(ctx context.Context, l *Lab, p Process) (procRecord, error) {
	dir, ns := l.Dir, l.NS(p.Role)
	rec := procRecord{Name: p.Name, Role: p.Role, Namespace: ns,
		Log: filepath.Join(procsDir(dir), p.Name+".log")}
	argv := expandArgs(p.Command, dir, p.Name)
	switch {
	case len(p.Serve) > 0:
		argv = append(append(slices.Clone(l.Helper), p.Serve...), "-ready-fd", "3")
	case len(p.Braid) > 0:
		if l.Braid == "" {
			return rec, fmt.Errorf("process %s runs braid, and the lab has no braid binary (Config.Braid)", p.Name)
		}
		argv = append([]string{l.Braid}, expandArgs(p.Braid, dir, p.Name)...)
	}
	rec.Args = argv
	if len(p.Command) > 0 {
		// ip netns exec would start, fail to exec and exit, and Up does not
		// wait for a Command: say now what is missing.
		if _, err := exec.LookPath(argv[0]); err != nil {
			return rec, fmt.Errorf("process %s: %w (scripts/deps.sh installs what the lab runs)", p.Name, err)
		}
	}
	if p.Config != "" {
		if err := os.WriteFile(confPath(dir, p.Name), []byte(expandConfig(p.Config, dir)), 0o600); err != nil {
			return rec, fmt.Errorf("process %s: %w", p.Name, err)
		}
	}
	for name, content := range p.Files {
		if name == "" || strings.ContainsAny(name, "/") {
			return rec, fmt.Errorf("process %s: file name %q: want a name without a directory", p.Name, name)
		}
		if err := os.WriteFile(filepath.Join(procsDir(dir), name), []byte(expandConfig(content, dir)), 0o600); err != nil {
			return rec, fmt.Errorf("process %s: %w", p.Name, err)
		}
	}

	logf, err := os.OpenFile(rec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return rec, fmt.Errorf("process %s: %w", p.Name, err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(append(os.Environ(), NameEnv+"="+l.Name), l.Env...)
	var ready *os.File
	if len(p.Serve) > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return rec, fmt.Errorf("process %s: %w", p.Name, err)
		}
		defer r.Close()
		ready = r
		cmd.ExtraFiles = []*os.File{w} // fd 3
		cmd.Env = append(cmd.Env, HelperEnv+"=1")
	}
	err = cmd.Start()
	for _, f := range cmd.ExtraFiles {
		f.Close() // only the child writes to it now
	}
	if err != nil {
		return rec, fmt.Errorf("process %s in namespace %s: %w", p.Name, ns, err)
	}
	rec.PID = cmd.Process.Pid
	// Reap it when it exits while this process lives; once this process
	// exits, init (or a subreaper) does.
	go cmd.Wait()
	if _, start, _, err := procStat(rec.PID); err == nil {
		rec.StartTime = start
	}
	if err := writeJSON(filepath.Join(procsDir(dir), p.Name+".json"), rec); err != nil {
		stopPIDs([]int{rec.PID})
		return rec, fmt.Errorf("process %s: %w", p.Name, err)
	}
	if ready == nil {
		return rec, nil
	}
	if err := waitReady(ctx, ready); err != nil {
		stopPIDs([]int{rec.PID})
		return rec, fmt.Errorf("process %s in namespace %s (%s): %w%s",
			p.Name, ns, strings.Join(argv, " "), err, logTail(rec.Log))
	}
	return rec, nil
}

// confPath is where a process's Config goes, {conf} in its Command.
func confPath(dir, name string) string { return filepath.Join(procsDir(dir), name+".conf") }

// expandArgs replaces {conf}, {pidfile}, {dir} and {lab} in a Command's
// arguments with the process's paths in the lab's run directory dir.
func expandArgs(args []string, dir, name string) []string {
	r := strings.NewReplacer("{conf}", confPath(dir, name), "{pidfile}", filepath.Join(procsDir(dir), name+".pid"),
		"{dir}", procsDir(dir), "{lab}", dir)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.Replace(a)
	}
	return out
}

// expandConfig replaces {dir} in a process's Config with the directory
// of the lab's processes (where Kea keeps its leases), and {lab} with the
// lab's run directory dir (where the peer's key is).
func expandConfig(config, dir string) string {
	return strings.NewReplacer("{dir}", procsDir(dir), "{lab}", dir).Replace(config)
}

// Reload gives the lab's process name a new configuration (its Config)
// and tells it to read it again with SIGHUP, as radvd and dnsmasq do.
func (l *Lab) Reload(name, config string) error {
	recs, err := readProcs(l.Dir)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	for _, rec := range recs {
		if rec.Name != name {
			continue
		}
		if !rec.alive() {
			return fmt.Errorf("lab %s: process %s (pid %d) is not running", l.Name, name, rec.PID)
		}
		if err := os.WriteFile(confPath(l.Dir, name), []byte(expandConfig(config, l.Dir)), 0o600); err != nil {
			return fmt.Errorf("lab %s: process %s: %w", l.Name, name, err)
		}
		if err := unix.Kill(rec.PID, unix.SIGHUP); err != nil {
			return fmt.Errorf("lab %s: process %s: SIGHUP: %w", l.Name, name, err)
		}
		return nil
	}
	return fmt.Errorf("lab %s: no process %s", l.Name, name)
}

// waitReady waits for a lab service's "ready" line on r.
func waitReady(ctx context.Context, r *os.File) error {
	deadline := time.Now().Add(readyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := r.SetReadDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := bufio.NewReader(r).ReadString('\n')
	switch {
	case strings.TrimSpace(line) == "ready":
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("not ready after %v", readyTimeout)
	case err == io.EOF:
		return errors.New("exited before it was ready")
	case err != nil:
		return err
	default:
		return fmt.Errorf("unexpected readiness message %q", line)
	}
}

// logTail returns the end of a log file, formatted to follow an error.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	const maxTail = 2000
	if len(b) > maxTail {
		b = b[len(b)-maxTail:]
	}
	return "; its log " + path + " ends with: " + strings.TrimSpace(string(b))
}

// readProcs returns the process records of the lab in dir.
func readProcs(dir string) ([]procRecord, error) {
	paths, err := filepath.Glob(filepath.Join(procsDir(dir), "*.json"))
	if err != nil {
		return nil, err
	}
	var recs []procRecord
	for _, p := range paths {
		var rec procRecord
		if err := readJSON(p, &rec); err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// alive reports whether the recorded process still runs: same PID, same
// start time, not a zombie.
func (rec procRecord) alive() bool {
	state, start, _, err := procStat(rec.PID)
	return err == nil && state != 'Z' && state != 'X' && (rec.StartTime == 0 || start == rec.StartTime)
}

// procStat returns a process's state, start time and parent from
// /proc/PID/stat.
func procStat(pid int) (state byte, start uint64, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name (field 2) may hold anything but ends at the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return f[0][0], start, ppid, nil
}

// gone reports whether pid has exited (or is a zombie, which holds no
// namespace any more).
func gone(pid int) bool {
	state, _, _, err := procStat(pid)
	return err != nil || state == 'Z' || state == 'X'
}

// stopPIDs stops processes: SIGTERM (to the process group when the
// process leads one, as the lab's detached processes do), then SIGKILL to
// those still there after a grace period. It returns the PIDs that
// survived both.
func stopPIDs(pids []int) []int {
	signal := func(pid int, sig unix.Signal) {
		if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
			unix.Kill(-pid, sig)
		}
		unix.Kill(pid, sig)
	}
	waitGone := func(d time.Duration) []int {
		deadline := time.Now().Add(d)
		for {
			var left []int
			for _, pid := range pids {
				if !gone(pid) {
					left = append(left, pid)
				}
			}
			if len(left) == 0 || time.Now().After(deadline) {
				return left
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, pid := range pids {
		signal(pid, unix.SIGTERM)
	}
	left := waitGone(2 * time.Second)
	for _, pid := range left {
		signal(pid, unix.SIGKILL)
	}
	pids = left
	return waitGone(2 * time.Second)
}

// pidsInNamespace returns the processes whose network namespace is the
// named one (as `ip netns pids` does), except this process and its
// ancestors.
func pidsInNamespace(ns string) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", ns), &want); err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	spare := map[int]bool{}
	for pid := os.Getpid(); pid > 1; {
		spare[pid] = true
		_, _, ppid, err := procStat(pid)
		if err != nil {
			break
		}
		pid = ppid
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || spare[pid] {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// writeJSON writes v to path atomically (temporary file, rename).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readJSON reads path into v.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
