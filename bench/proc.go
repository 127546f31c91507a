package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sample is what one timed run of one side measured.
type sample struct {
	// Wall is the elapsed time of the process(es), from fork to reap.
	Wall time.Duration
	// CPU is user+sys time from the processes' rusage (re-execs and
	// children they waited for included).
	CPU time.Duration
	// MaxRSS is the largest resident set of any process of the run, in
	// KiB; 0 when not measured (see harness.timed).
	MaxRSS int64
	// Writes is the number of events `ip monitor all` saw during the run;
	// -1 when the run was not watched.
	Writes int
	// Reported is the time the command itself reported for its core work
	// (braid apply's "Applied: ... in X"); 0 when it reports none.
	Reported time.Duration
}

// add accounts for another process of the same run, run after the first:
// times add up, the largest resident set wins.
func (s sample) add(o sample) sample {
	s.Wall += o.Wall
	s.CPU += o.CPU
	s.MaxRSS = max(s.MaxRSS, o.MaxRSS)
	s.Reported += o.Reported
	if o.Writes >= 0 {
		s.Writes = max(s.Writes, 0) + o.Writes
	}
	return s
}

// proc is one process to time.
type proc struct {
	argv []string
	env  []string // added to the harness's environment
	// ok lists the exit codes that are a success (default: 0 only).
	ok []int
	// discard sends stdout to /dev/null instead of a pipe the harness
	// reads: output costs nothing, the tool's best case.
	discard bool
}

// result is a timed process's figures and output.
type result struct {
	sample
	stdout, stderr []byte
	exit           int
}

// gnuTime is GNU time(1), which measures the maximum resident set of the
// processes the memory pass runs.
const gnuTime = "/usr/bin/time"

// timed runs p and measures it: wall clock around fork and reap, CPU from
// the rusage wait4 returns. An exit code outside p.ok is an error carrying
// stderr.
//
// The maximum resident set is measured only in the memory pass
// (h.memoryPass), where p runs under GNU time(1): the ru_maxrss of a
// process this harness starts is polluted by the harness's own, because
// Go starts children with vfork and exec records the high-water mark of
// the memory it leaves, which is the harness's. time(1) is small, and its
// fork and exec would add a millisecond or two to every timed process, so
// the memory pass is a separate run.
func (h *harness) timed(ctx context.Context, p proc) (result, error) {
	argv := p.argv
	var rssFile string
	if h.memoryPass {
		rssFile = filepath.Join(h.dir, "maxrss")
		argv = append([]string{gnuTime, "-q", "-f", "%M", "-o", rssFile}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if len(p.env) > 0 {
		cmd.Env = append(cmd.Environ(), p.env...)
	}
	// Output goes to files, not pipes: no reader competes with the
	// process for the CPU while it runs.
	stdout, err := os.CreateTemp(h.dir, "stdout-")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(stdout.Name())
	defer stdout.Close()
	stderr, err := os.CreateTemp(h.dir, "stderr-")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(stderr.Name())
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if p.discard {
		cmd.Stdout = nil // os/exec opens /dev/null
	}
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	r := result{sample: sample{Wall: wall, Writes: -1}}
	if r.stdout, err = os.ReadFile(stdout.Name()); err != nil {
		return r, err
	}
	if r.stderr, err = os.ReadFile(stderr.Name()); err != nil {
		return r, err
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return r, fmt.Errorf("%s: %w", strings.Join(p.argv, " "), runErr)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	r.exit = cmd.ProcessState.ExitCode()
	okCodes := p.ok
	if okCodes == nil {
		okCodes = []int{0}
	}
	if !slices.Contains(okCodes, r.exit) {
		return r, fmt.Errorf("%s: exit %d: %s", strings.Join(p.argv, " "), r.exit, lastLines(r.stderr, 5))
	}
	if rssFile != "" {
		if r.MaxRSS, err = readMaxRSS(rssFile); err != nil {
			return r, fmt.Errorf("%s: %w", strings.Join(p.argv, " "), err)
		}
	}
	return r, nil
}

// readMaxRSS reads the KiB time(1) wrote for -f %M.
func readMaxRSS(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read time(1) output: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, errors.New("time(1) wrote no maximum RSS")
	}
	kib, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("time(1) output %q: %w", b, err)
	}
	return kib, nil
}

// lastLines returns the last n lines of b, for error messages.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
