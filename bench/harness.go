package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The converged box must show no kernel event for quietFor, within
// quietLimit, before the no-op measurements start.
const (
	quietFor   = 2 * time.Second
	quietLimit = 30 * time.Second
)

// harness holds what every measurement shares: the braid binary, the
// generated files, the namespaces, and a converged box for the no-op
// measurements.
type harness struct {
	braid  string        // absolute path of the binary under test
	n      int           // samples per side
	settle time.Duration // pause before each sample
	scale  scale
	log    io.Writer

	dir               string // temporary: braid's runtime dirs, scratch
	files             string // the specs and batch files: dir, or -files
	spec, tiny        string // the scale spec; the same uplinks with no routes:
	batchMain, batch6 string // the ip -batch mirror of the spec's plan from empty
	emptyBatch        string // an empty ip -batch file (process start)
	mirror            *ipBatch
	// nftScript is braid's nftables table as `nft list` prints it in the
	// converged box: `nft -f` of it is the mirror's share of the table.
	nftScript string

	ns        *namespaces
	converged *box // braid applied the spec here; measurements only read it

	// haveTime says GNU time(1) is installed; memoryPass that timed runs
	// its processes under it (see timed).
	haveTime, memoryPass bool

	// events are the kernel events seen during braid's no-op runs, to print.
	events []string
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, format+"\n", args...)
}

// settleDown waits before a sample: deleting a namespace full of routes
// is finished by the kernel in the background, and that work must not land
// in the next sample.
func (h *harness) settleDown(ctx context.Context) error {
	select {
	case <-time.After(h.settle):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// braidProc is braid run inside ns with its runtime directories under the
// harness's temporary directory.
func (h *harness) braidProc(ns string, args ...string) proc {
	return proc{
		argv: append([]string{h.braid, "--netns", ns}, args...),
		env: []string{
			"BRAID_RUN_DIR=" + filepath.Join(h.dir, "run"),
			"BRAID_STATE_DIR=" + filepath.Join(h.dir, "state"),
			"NO_COLOR=1",
		},
	}
}

// prepare writes the specs, checks that braid accepts them, converts
// braid's plan from empty into the ip -batch mirror, converges a box with
// braid and another with the mirror, and checks that both hold the same
// kernel objects. The braid box stays, converged, for the no-op
// measurements.
func (h *harness) prepare(ctx context.Context) error {
	h.spec = filepath.Join(h.files, "bench.yaml")
	h.tiny = filepath.Join(h.files, "tiny.yaml")
	for path, sc := range map[string]scale{h.spec: h.scale, h.tiny: {}} {
		var b bytes.Buffer
		if err := writeSpec(&b, sc); err != nil {
			return err
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write spec: %w", err)
		}
		if _, err := h.timed(ctx, proc{argv: []string{h.braid, "validate", path}}); err != nil {
			return fmt.Errorf("the generated spec is not valid: %w", err)
		}
	}
	if st, err := os.Stat(h.spec); err == nil {
		h.logf("spec: %s (%d KiB): %d IPv4 /24 + %d IPv6 /48 destinations, %d source prefixes, two static uplinks",
			h.spec, st.Size()>>10, h.scale.To4, h.scale.To6, h.scale.From)
	}

	b, err := h.ns.newBox(ctx)
	if err != nil {
		return err
	}
	r, err := h.timed(ctx, withOK(h.braidProc(b.ns, "plan", "--json", "-f", h.spec), 2))
	if err != nil {
		h.ns.release(b)
		return fmt.Errorf("plan from empty: %w", err)
	}
	doc, err := parsePlan(r.stdout)
	if err != nil {
		h.ns.release(b)
		return err
	}
	if err := h.writeMirror(doc); err != nil {
		h.ns.release(b)
		return err
	}
	if _, err := h.timed(ctx, h.braidProc(b.ns, "apply", "-f", h.spec)); err != nil {
		h.ns.release(b)
		return fmt.Errorf("converge the box for the no-op measurements: %w", err)
	}
	h.converged = b
	table, err := nftTable(ctx, b.ns)
	if err != nil {
		return err
	}
	h.nftScript = filepath.Join(h.files, "mirror.nft")
	if err := os.WriteFile(h.nftScript, []byte(table), 0o644); err != nil {
		return fmt.Errorf("write nft script: %w", err)
	}
	if _, err := h.timed(ctx, h.braidProc(b.ns, "plan", "-f", h.spec)); err != nil {
		return fmt.Errorf("plan after apply is not empty: %w", err)
	}
	start := time.Now()
	settled, err := waitQuiet(ctx, b.ns, quietFor, quietLimit)
	if err != nil {
		return err
	}
	h.logf("converged box quiet after %s (%d kernel events of its own meanwhile)", time.Since(start).Round(time.Millisecond), len(settled))
	for _, e := range settled {
		h.logf("    %s", e)
	}

	alt, err := h.ns.newBox(ctx)
	if err != nil {
		return err
	}
	defer h.ns.release(alt)
	if _, err := h.runMirror(ctx, alt.ns); err != nil {
		return err
	}
	if err := h.sameObjects(ctx, b.ns, alt.ns); err != nil {
		return err
	}
	if got, err := nftTable(ctx, alt.ns); err != nil || got != table {
		return fmt.Errorf("nft -f of braid's table made a different table (%v)", err)
	}
	return nil
}

// withOK returns p accepting these exit codes as success.
func withOK(p proc, codes ...int) proc {
	p.ok = codes
	return p
}

// writeMirror converts the plan into ip -batch files and checks that the
// counts match, printing both.
func (h *harness) writeMirror(doc *planDoc) error {
	m, err := mirror(doc)
	if err != nil {
		return err
	}
	if n := m.Plan.total(); n != len(doc.Changes) || n != doc.Summary.Add+doc.Summary.Change || doc.Summary.Remove != 0 {
		return fmt.Errorf("plan from empty: %d changes, summary says %d to add, %d to change, %d to remove",
			len(doc.Changes), doc.Summary.Add, doc.Summary.Change, doc.Summary.Remove)
	}
	steer, from := 0, 0
	for _, c := range doc.Changes {
		switch {
		case strings.HasPrefix(c.Address, "route[7100 "):
			steer++
		case strings.HasPrefix(c.Address, "rule[") && strings.Contains(c.Address, " pref 7100 "):
			from++
		}
	}
	if want := h.scale.To4 + h.scale.To6; steer != want || from != h.scale.From {
		return fmt.Errorf("the spec yields %d steering routes and %d source rules, want %d and %d", steer, from, want, h.scale.From)
	}
	for _, k := range kinds {
		if k != kindSysctl && m.Plan[k] != m.Mirrored[k] {
			return fmt.Errorf("ip -batch mirror has %d %s objects, braid's plan %d", m.Mirrored[k], k, m.Plan[k])
		}
	}
	h.logf("braid plan from empty: %d changes (%s), of which %d steering routes and %d source rules",
		m.Plan.total(), m.Plan, steer, from)
	h.logf("ip -batch mirror:      %d objects (%s); ip cannot write sysctls", m.Mirrored.total(), m.Mirrored)
	h.mirror = m
	h.batchMain = filepath.Join(h.files, "mirror.batch")
	h.batch6 = filepath.Join(h.files, "mirror6.batch")
	h.emptyBatch = filepath.Join(h.files, "empty.batch")
	for path, lines := range map[string][]string{h.batchMain: m.Main, h.batch6: m.Rules6, h.emptyBatch: nil} {
		text := strings.Join(lines, "\n")
		if text != "" {
			text += "\n"
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write batch file: %w", err)
		}
	}
	return nil
}

// runMirror converges ns with the ip -batch mirror: one ip run for
// everything but IPv6 rules, one `ip -6` run for those, and `nft -f` of
// braid's nftables table.
func (h *harness) runMirror(ctx context.Context, ns string) (sample, error) {
	r1, err := h.timed(ctx, proc{argv: []string{"ip", "-n", ns, "-batch", h.batchMain}})
	if err != nil {
		return sample{}, err
	}
	r2, err := h.timed(ctx, proc{argv: []string{"ip", "-n", ns, "-6", "-batch", h.batch6}})
	if err != nil {
		return sample{}, err
	}
	total := r1.sample.add(r2.sample)
	if h.nftScript != "" {
		r3, err := h.timed(ctx, proc{argv: []string{"ip", "netns", "exec", ns, "nft", "-f", h.nftScript}})
		if err != nil {
			return sample{}, err
		}
		total = total.add(r3.sample)
	}
	return total, nil
}

// ifindexPrefix is the "N: " that starts a line of `ip -o addr`.
var ifindexPrefix = regexp.MustCompile(`^\d+:\s+`)

// ownedObjects dumps what braid would own in ns, in a form comparable
// across namespaces: routes and rules with protocol 98, global addresses
// with their flags, MPTCP endpoints (with their ids) and limits.
func ownedObjects(ctx context.Context, ns string) (map[string][]string, error) {
	out := map[string][]string{}
	dump := func(kind string, keep func(string) string, args ...string) error {
		b, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns}, args...)...).Output()
		if err != nil {
			return fmt.Errorf("ip -n %s %s: %w", ns, strings.Join(args, " "), err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if line = keep(strings.TrimSpace(line)); line != "" {
				out[kind] = append(out[kind], line)
			}
		}
		slices.Sort(out[kind])
		return nil
	}
	all := func(s string) string { return s }
	proto98 := func(s string) string {
		if strings.Contains(s, "proto 98") {
			return s
		}
		return ""
	}
	if err := dump("routes", all, "route", "show", "table", "all", "proto", routeProto); err != nil {
		return nil, err
	}
	if err := dump("IPv4 rules", proto98, "-4", "rule", "show"); err != nil {
		return nil, err
	}
	if err := dump("IPv6 rules", proto98, "-6", "rule", "show"); err != nil {
		return nil, err
	}
	addr := func(s string) string { return ifindexPrefix.ReplaceAllString(s, "") }
	if err := dump("addresses", addr, "-o", "address", "show", "scope", "global"); err != nil {
		return nil, err
	}
	if err := dump("MPTCP endpoints", all, "mptcp", "endpoint", "show"); err != nil {
		return nil, err
	}
	if err := dump("MPTCP limits", all, "mptcp", "limits", "show"); err != nil {
		return nil, err
	}
	return out, nil
}

// sameObjects checks that braid and the mirror created the same routes,
// rules and addresses, so that the converge comparison is fair.
func (h *harness) sameObjects(ctx context.Context, braidNS, altNS string) error {
	a, err := ownedObjects(ctx, braidNS)
	if err != nil {
		return err
	}
	b, err := ownedObjects(ctx, altNS)
	if err != nil {
		return err
	}
	var summary []string
	for _, kind := range []string{"routes", "IPv4 rules", "IPv6 rules", "addresses", "MPTCP endpoints", "MPTCP limits"} {
		if !slices.Equal(a[kind], b[kind]) {
			return fmt.Errorf("braid and ip -batch made different %s:\n  braid only: %s\n  ip only: %s",
				kind, firstMissing(a[kind], b[kind]), firstMissing(b[kind], a[kind]))
		}
		summary = append(summary, fmt.Sprintf("%d %s", len(a[kind]), kind))
	}
	h.logf("same kernel objects after braid apply and after ip -batch: %s", strings.Join(summary, ", "))
	return nil
}

// firstMissing returns up to three lines of a that b lacks (both sorted).
func firstMissing(a, b []string) string {
	var out []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, strings.TrimSpace(s))
			if len(out) == 3 {
				break
			}
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, " | ")
}
