package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// measurements lists what the harness measures on the scale spec, each
// braid side beside its alternative: the three writeBreakdown reads.
// MPTCP endpoints, nftables and the host-routes spec have their own
// (mptcpMeasurements, nftMeasurements, hostMeasurements).
func measurements(h *harness) []*measurement {
	objects := thousands(h.scale.To4+h.scale.To6) + " routes + " + thousands(h.scale.From) + " source rules"
	all := []*measurement{
		{
			name:  "converge from empty, " + objects,
			braid: side{label: "braid apply", run: braidConverge},
			alt:   &side{label: "ip -batch (+ ip -6 -batch) + nft -f", run: mirrorConverge},
			rows: []row{
				{what: "wall", metric: wall, goal: ratioAtMost(1.0)},
				{what: "CPU user+sys", metric: cpu},
				{what: "max RSS", metric: maxRSS},
				{what: `of which braid's apply phase ("Applied: ... in X")`, metric: reported},
			},
		},
		{
			name:  "no-op apply on the converged state",
			braid: side{label: "braid apply", run: braidNoop("apply")},
			alt:   &side{label: "ip route + rule dumps", run: dumpState},
			rows: []row{
				{what: "wall", metric: wall, goal: under(50 * time.Millisecond)},
				{what: "kernel writes (ip monitor all events)", metric: writes, goal: noWrites},
				{what: "CPU user+sys", metric: cpu},
			},
		},
		{
			name:  "plan on the converged state",
			braid: side{label: "braid plan", run: braidNoop("plan")},
			alt:   &side{label: "ip route + rule dumps", run: dumpState},
			rows: []row{
				{what: "wall", metric: wall},
				{what: "kernel writes (ip monitor all events)", metric: writes},
			},
		},
	}
	return all
}

// breakdown lists the figures that show where the time of a converge
// goes: process start, parsing the spec, planning; the apply phase is
// what braid apply itself reports.
func breakdown() []*measurement {
	return []*measurement{
		{
			name:  "process start (with --netns, validate a spec without routes)",
			braid: side{label: "braid validate", run: braidValidate(false)},
			alt:   &side{label: "ip -batch (empty file)", run: emptyBatch},
			rows:  []row{{what: "wall", metric: wall}, {what: "max RSS", metric: maxRSS}},
		},
		{
			name:  "start + parse and validate the spec",
			braid: side{label: "braid validate", run: braidValidate(true)},
			rows:  []row{{what: "wall", metric: wall}, {what: "max RSS", metric: maxRSS}},
		},
		{
			name:  "start + parse + compile + observe + diff + print, from empty",
			braid: side{label: "braid plan", run: braidPlanEmpty},
			rows:  []row{{what: "wall", metric: wall}, {what: "max RSS", metric: maxRSS}},
		},
	}
}

// appliedIn finds the duration braid apply reports for its writes.
var appliedIn = regexp.MustCompile(`(?m)^Applied: .* in ([0-9.]+[a-zµ]+)\.$`)

// braidConverge times `braid apply` of the spec in a fresh box.
func braidConverge(ctx context.Context, h *harness) (sample, error) {
	b, err := h.ns.newBox(ctx)
	if err != nil {
		return sample{}, err
	}
	defer h.ns.release(b)
	return verifiedApply(ctx, h, b.ns, h.spec)
}

// verifiedApply times `braid apply -f spec` in ns, fails unless braid
// verified the result, and keeps the apply time braid reports.
func verifiedApply(ctx context.Context, h *harness, ns, spec string) (sample, error) {
	r, err := h.timed(ctx, h.braidProc(ns, "apply", "-f", spec))
	if err != nil {
		return sample{}, err
	}
	if !bytes.Contains(r.stdout, []byte("Verified")) {
		return sample{}, fmt.Errorf("braid apply did not verify: %s", lastLines(r.stdout, 3))
	}
	r.Reported = appliedDuration(r.stdout)
	return r.sample, nil
}

// appliedDuration is the time braid apply reports for its writes, or 0.
func appliedDuration(stdout []byte) time.Duration {
	if m := appliedIn.FindSubmatch(stdout); m != nil {
		if d, err := time.ParseDuration(string(m[1])); err == nil {
			return d
		}
	}
	return 0
}

// mirrorConverge times the ip -batch mirror of the same objects in a
// fresh box.
func mirrorConverge(ctx context.Context, h *harness) (sample, error) {
	b, err := h.ns.newBox(ctx)
	if err != nil {
		return sample{}, err
	}
	defer h.ns.release(b)
	return h.runMirror(ctx, b.ns)
}

// braidNoop times `braid apply` or `braid plan` on the converged box with
// `ip monitor all` watching it.
func braidNoop(command string) func(context.Context, *harness) (sample, error) {
	return func(ctx context.Context, h *harness) (sample, error) {
		ns := h.converged.ns
		r, events, err := watched(ctx, ns, func() (result, error) {
			return h.timed(ctx, h.braidProc(ns, command, "-f", h.spec))
		})
		if err != nil {
			return sample{}, err
		}
		if !bytes.Contains(r.stdout, []byte("No changes.")) {
			return sample{}, fmt.Errorf("braid %s on the converged state is not a no-op: %s", command, lastLines(r.stdout, 3))
		}
		for _, e := range events {
			h.events = append(h.events, "braid "+command+": "+e)
		}
		return r.sample, nil
	}
}

// dumpState times reading the state braid compares with: every route of
// both families in every table, and the rules of both families (ip rule
// shows one family at a time), printed to /dev/null.
func dumpState(ctx context.Context, h *harness) (sample, error) {
	return dumpStateOf(ctx, h, h.converged.ns)
}

// dumpStateOf is dumpState of the namespace ns.
func dumpStateOf(ctx context.Context, h *harness, ns string) (sample, error) {
	total := sample{Writes: -1}
	for _, args := range [][]string{
		{"route", "show", "table", "all"},
		{"-4", "rule", "show"},
		{"-6", "rule", "show"},
	} {
		r, err := h.timed(ctx, proc{argv: append([]string{"ip", "-n", ns}, args...), discard: true})
		if err != nil {
			return sample{}, err
		}
		total = total.add(r.sample)
	}
	return total, nil
}

// braidValidate times `braid --netns NS validate` of the scale spec (full)
// or of the same uplinks without routes (process start).
func braidValidate(full bool) func(context.Context, *harness) (sample, error) {
	return func(ctx context.Context, h *harness) (sample, error) {
		path := h.tiny
		if full {
			path = h.spec
		}
		r, err := h.timed(ctx, h.braidProc(h.converged.ns, "validate", path))
		if err != nil {
			return sample{}, err
		}
		if !strings.Contains(string(r.stdout), "valid") {
			return sample{}, fmt.Errorf("braid validate: %s", lastLines(r.stdout, 1))
		}
		return r.sample, nil
	}
}

// emptyBatch times ip switching into the namespace and reading an empty
// batch file: ip's process start.
func emptyBatch(ctx context.Context, h *harness) (sample, error) {
	r, err := h.timed(ctx, proc{argv: []string{"ip", "-n", h.converged.ns, "-batch", h.emptyBatch}})
	return r.sample, err
}

// braidPlanEmpty times `braid plan` of the spec in a fresh box: everything
// apply does before its first write.
func braidPlanEmpty(ctx context.Context, h *harness) (sample, error) {
	b, err := h.ns.newBox(ctx)
	if err != nil {
		return sample{}, err
	}
	defer h.ns.release(b)
	r, err := h.timed(ctx, withOK(h.braidProc(b.ns, "plan", "-f", h.spec), 2))
	return r.sample, err
}
