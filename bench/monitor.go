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
	ns    string
	cmd   *exec.Cmd
	lines chan string
	seq   int
}

// startMonitor starts `ip -n ns monitor all`. Stop it with stop.
func startMonitor(ns string) (*monitor, error) {
	m := &monitor{ns: ns, lines: make(chan string, 1024)}
	m.cmd = exec.Command("ip", "-n", ns, "monitor", "all")
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("ip monitor: %w", err)
	}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("ip monitor: %w", err)
	}
	go func() {
		defer close(m.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			m.lines <- sc.Text()
		}
	}()
	return m, nil
}

// stop ends the monitor and reaps it.
func (m *monitor) stop() {
	m.cmd.Process.Kill()
	for range m.lines { // drain, so the reader ends
	}
	m.cmd.Wait()
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
