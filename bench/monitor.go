package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// markerTable is a routing table outside braid's range, where the monitor's
// marker routes come and go.
const markerTable = "250"

// markerWait bounds the wait for a marker to come back through the monitor.
const markerWait = 5 * time.Second

// monitor is `ip -n NS monitor all` running in the background. Its output
// is delimited by markers: a route the harness adds and deletes, so the
// events seen between two markers are exactly those of what ran between
// them, and a marker coming back proves the monitor was listening.
type monitor struct {
	ns string
	lineProc
	seq int
}

// startMonitor starts `ip -n ns monitor all`. Stop it with stop.
func startMonitor(ns string) (*monitor, error) {
	p, err := startLines("ip monitor", "ip", "-n", ns, "monitor", "all")
	if err != nil {
		return nil, err
	}
	return &monitor{ns: ns, lineProc: p}, nil
}

// lineProc is a process running in the background, its stdout read line
// by line into lines, which closes when the output ends.
type lineProc struct {
	cmd   *exec.Cmd
	lines chan string
}

// startLines starts argv as a lineProc; what names it in errors. Stop it
// with stop.
func startLines(what string, argv ...string) (lineProc, error) {
	p := lineProc{cmd: exec.Command(argv[0], argv[1:]...), lines: make(chan string, 1024)}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return lineProc{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := p.cmd.Start(); err != nil {
		return lineProc{}, fmt.Errorf("%s: %w", what, err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p, nil
}

// stop ends the process and reaps it.
func (p lineProc) stop() {
	p.cmd.Process.Kill()
	for range p.lines { // drain, so the reader ends
	}
	p.cmd.Wait()
}

// mark adds and deletes a marker route and waits until the monitor shows
// the delete. It returns the events the monitor printed before the
// marker's own.
func (m *monitor) mark(ctx context.Context) ([]string, error) {
	m.seq++
	dst := fmt.Sprintf("192.0.2.%d", m.seq%250+1)
	if err := ip(ctx, "-n", m.ns, "route", "add", dst+"/32", "dev", "lo", "table", markerTable, "proto", "99"); err != nil {
		return nil, fmt.Errorf("marker: %w", err)
	}
	if err := ip(ctx, "-n", m.ns, "route", "del", dst+"/32", "dev", "lo", "table", markerTable); err != nil {
		return nil, fmt.Errorf("marker: %w", err)
	}
	marker := dst + " dev lo table " + markerTable + " "
	var before []string
	seen := false
	timeout := time.After(markerWait)
	for {
		select {
		case line, ok := <-m.lines:
			if !ok {
				return nil, errors.New("ip monitor ended before the marker came back")
			}
			switch {
			case strings.Contains(line, "Deleted "+marker):
				return before, nil
			case strings.Contains(line, marker):
				seen = true
			case !seen:
				before = append(before, line)
			}
		case <-timeout:
			return nil, fmt.Errorf("marker %s did not come back through ip monitor within %s", dst, markerWait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// watched runs fn with `ip monitor all` watching ns, and returns fn's
// result with the events seen during it.
func watched(ctx context.Context, ns string, fn func() (result, error)) (result, []string, error) {
	m, err := startMonitor(ns)
	if err != nil {
		return result{}, nil, err
	}
	return watchedBy(ctx, m, fn)
}

// markedMonitor is a monitor whose output is delimited by markers: mark
// returns the events seen before the marker it makes.
type markedMonitor interface {
	mark(ctx context.Context) ([]string, error)
	stop()
}

// watchedBy runs fn between two markers of m, then stops m, and returns
// fn's result with the events seen during it as its writes.
func watchedBy(ctx context.Context, m markedMonitor, fn func() (result, error)) (result, []string, error) {
	defer m.stop()
	if _, err := m.mark(ctx); err != nil {
		return result{}, nil, err
	}
	r, err := fn()
	if err != nil {
		return r, nil, err
	}
	events, err := m.mark(ctx)
	if err != nil {
		return r, nil, err
	}
	r.Writes = len(events)
	return r, events, nil
}

// waitQuiet waits until `ip monitor all` has seen no event in ns for
// quietFor, at most limit, and returns the events it saw meanwhile: after
// a converge the kernel keeps working on its own for a while (duplicate
// address detection of link-local addresses, neighbour discovery), and
// those events must not be taken for writes of the no-op runs.
func waitQuiet(ctx context.Context, ns string, quietFor, limit time.Duration) ([]string, error) {
	m, err := startMonitor(ns)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, err := m.mark(ctx); err != nil {
		return nil, err
	}
	var seen []string
	deadline := time.After(limit)
	for {
		select {
		case line, ok := <-m.lines:
			if !ok {
				return seen, errors.New("ip monitor ended")
			}
			seen = append(seen, line)
		case <-time.After(quietFor):
			return seen, nil
		case <-deadline:
			return seen, fmt.Errorf("namespace %s still not quiet after %s: %d events, the last %q", ns, limit, len(seen), seen[len(seen)-1])
		case <-ctx.Done():
			return seen, ctx.Err()
		}
	}
}
