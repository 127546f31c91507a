package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// fmtDuration renders nanoseconds as milliseconds, with a decimal below
// 100 ms.
func fmtDuration(ns float64) string {
	ms := ns / float64(time.Millisecond)
	if ms < 100 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// thousands renders n with comma separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// fmtKiB renders KiB as MiB.
func fmtKiB(kib float64) string {
	return fmt.Sprintf("%.1f MiB", kib/1024)
}

// format renders one value of a metric.
func (m metric) format(v float64) string {
	switch m {
	case maxRSS:
		return fmtKiB(v)
	case writes:
		return fmt.Sprintf("%.0f", v)
	}
	return fmtDuration(v)
}

// cell renders a side's figure: the median and the minimum for times and
// sizes, the largest count for writes (a goal of zero means zero in every
// run).
func (m metric) cell(s stats, label string) string {
	if !s.ok {
		return "—"
	}
	var v string
	switch {
	case m == writes:
		v = fmt.Sprintf("%s (max)", m.format(s.max))
	case s.n == 1:
		v = m.format(s.median)
	default:
		v = fmt.Sprintf("%s (min %s)", m.format(s.median), m.format(s.min))
	}
	return fmt.Sprintf("%s `%s`", v, label)
}

// writeTable writes the markdown table of outcomes: what, braid,
// alternative, ratio of the medians, goal, verdict. It returns the rows
// whose goal braid missed.
func writeTable(w io.Writer, outcomes []*outcome) (missed []string) {
	fmt.Fprintln(w, "| what | braid | alternative | ratio | goal | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, o := range outcomes {
		for _, r := range o.m.rows {
			braidSamples, altSamples := o.samples(r.metric)
			b := summarize(r.metric, braidSamples)
			a := stats{}
			altCell := "—"
			if o.m.alt != nil {
				a = summarize(r.metric, altSamples)
				altCell = r.metric.cell(a, o.m.alt.label)
			}
			ratio := "—"
			if b.ok && a.ok && a.median > 0 && r.metric != writes {
				ratio = fmt.Sprintf("%.2f", b.median/a.median)
			}
			goalText, verdict := "—", "—"
			if r.goal != nil {
				goalText, verdict = r.goal.text, "met"
				if !r.goal.met(b, a) {
					verdict = "**missed**"
					missed = append(missed, o.m.name+", "+r.what)
				}
			}
			fmt.Fprintf(w, "| %s: %s | %s | %s | %s | %s | %s |\n",
				o.m.name, r.what, r.metric.cell(b, o.m.braid.label), altCell, ratio, goalText, verdict)
		}
	}
	return missed
}

// writeBreakdown writes where the time of braid apply goes, from empty and
// on the converged state, from the medians of the breakdown measurements
// and of the main ones: each phase is the difference between two commands
// of which one runs one phase more, so the figures are estimates.
func writeBreakdown(w io.Writer, start, validate, planEmpty, converge, noop, planConverged *outcome) {
	med := func(o *outcome, m metric) float64 { return summarize(m, o.braid).median }
	startup, parsed := med(start, wall), med(validate, wall)
	fromEmpty, applied := med(converge, wall), med(converge, reported)
	onConverged := med(noop, wall)
	phases := []struct {
		name          string
		empty, noWork float64
	}{
		{"process start with --netns (`braid validate` of a spec without routes)", startup, startup},
		{"read, parse and validate the spec (`braid validate` minus the above)", parsed - startup, parsed - startup},
		{"compile, observe, diff and print the plan (`braid plan` minus the above)",
			med(planEmpty, wall) - parsed, med(planConverged, wall) - parsed},
		{"apply: the kernel writes (braid's own `Applied: ... in X`)", applied, 0},
		{"the rest: lock, record, verify (observe again and diff) (apply minus the above)",
			fromEmpty - med(planEmpty, wall) - applied, onConverged - med(planConverged, wall)},
	}
	fmt.Fprintln(w, "| phase of `braid apply` | from empty | share | no-op, converged | share |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, p := range phases {
		fmt.Fprintf(w, "| %s | %s | %.0f%% | %s | %.0f%% |\n", p.name,
			fmtDuration(p.empty), 100*p.empty/fromEmpty, fmtDuration(p.noWork), 100*p.noWork/onConverged)
	}
	fmt.Fprintf(w, "| total (`braid apply` wall) | %s | 100%% | %s | 100%% |\n", fmtDuration(fromEmpty), fmtDuration(onConverged))
}

// writeEvents lists the kernel events seen during braid's no-op runs.
func writeEvents(w io.Writer, events []string) {
	if len(events) == 0 {
		fmt.Fprintln(w, "ip monitor all saw no event during any no-op braid run.")
		return
	}
	fmt.Fprintf(w, "ip monitor all saw %d event(s) during no-op braid runs:\n", len(events))
	for _, e := range events {
		fmt.Fprintln(w, "    "+strings.TrimSpace(e))
	}
}
