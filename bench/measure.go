package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// A measurement is one thing braid does, timed beside the alternative an
// administrator would use for the same result, in the same run. Adding one
// (nftables against `nft -f`, MPTCP endpoints against `ip -batch`) is a new
// entry in measurements() with its two sides.
type measurement struct {
	// name says what is measured, as the report's first column reads.
	name string
	// braid is the side under test.
	braid side
	// alt is what braid is measured against; nil for a figure of braid's
	// alone (the breakdown of where its time goes).
	alt *side
	// rows are the figures the report shows, each with its goal.
	rows []row
}

// side is one way of getting the result: braid's or the alternative's.
type side struct {
	// label names the command, as the report shows it.
	label string
	// run makes one sample: it prepares what it needs (untimed), times the
	// command(s) and returns the figures.
	run func(ctx context.Context, h *harness) (sample, error)
}

// metric is one figure of a sample.
type metric int

const (
	wall     metric = iota // elapsed time
	cpu                    // user+sys CPU time
	maxRSS                 // largest resident set
	writes                 // events seen by ip monitor
	reported               // the time the command reported for its own work
)

// value extracts the metric from a sample; ok is false when the sample
// does not have it.
func (m metric) value(s sample) (v float64, ok bool) {
	switch m {
	case wall:
		return float64(s.Wall), true
	case cpu:
		return float64(s.CPU), true
	case maxRSS:
		return float64(s.MaxRSS), s.MaxRSS > 0
	case writes:
		return float64(s.Writes), s.Writes >= 0
	case reported:
		return float64(s.Reported), s.Reported > 0
	}
	return 0, false
}

// row is one line of the report: a metric of a measurement and its goal.
type row struct {
	// what qualifies the measurement's name ("wall", "CPU user+sys").
	what   string
	metric metric
	// goal is nil for a figure given for information.
	goal *goal
}

// goal is a target and the test that says whether braid met it.
type goal struct {
	text string
	met  func(braid, alt stats) bool
}

// ratioAtMost is met when braid's median is at most r times the
// alternative's.
func ratioAtMost(r float64) *goal {
	return &goal{
		text: fmt.Sprintf("ratio ≤ %.1f", r),
		met:  func(b, a stats) bool { return a.ok && b.median <= r*a.median },
	}
}

// under is met when braid's median is below d.
func under(d time.Duration) *goal {
	return &goal{
		text: "< " + fmtDuration(float64(d)),
		met:  func(b, _ stats) bool { return b.median < float64(d) },
	}
}

// noWrites is met when no sample saw a kernel event.
var noWrites = &goal{
	text: "0 in every run",
	met:  func(b, _ stats) bool { return b.ok && b.max == 0 },
}

// stats summarizes one metric over a side's samples.
type stats struct {
	ok               bool // some sample had the metric
	n                int  // samples that had it
	median, min, max float64
}

func summarize(m metric, samples []sample) stats {
	var vs []float64
	for _, s := range samples {
		if v, ok := m.value(s); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return stats{}
	}
	slices.Sort(vs)
	med := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return stats{ok: true, n: len(vs), median: med, min: vs[0], max: vs[len(vs)-1]}
}

// outcome is a measurement's samples, both sides: the timed ones, and
// those of the memory pass, which only the max RSS rows read.
type outcome struct {
	m                *measurement
	braid, alt       []sample
	braidMem, altMem []sample
}

// samples returns the samples a metric is read from.
func (o *outcome) samples(m metric) (braid, alt []sample) {
	if m == maxRSS {
		return o.braidMem, o.altMem
	}
	return o.braid, o.alt
}

// runMeasurement takes n samples of each side, alternating which side
// goes first so that neither always runs on a warmer (or busier) machine,
// then, if a row reports the max RSS and time(1) is there, one sample of
// each side in the memory pass.
func (h *harness) runMeasurement(ctx context.Context, m *measurement) (*outcome, error) {
	o := &outcome{m: m}
	one := func(s *side, into *[]sample) error {
		if err := h.settleDown(ctx); err != nil {
			return err
		}
		smp, err := s.run(ctx, h)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", m.name, s.label, err)
		}
		*into = append(*into, smp)
		h.logf("    %-28s %s", s.label, smp)
		return nil
	}
	h.logf("%s", m.name)
	for i := range h.n {
		first, second := &m.braid, m.alt
		firstInto, secondInto := &o.braid, &o.alt
		if i%2 == 1 && m.alt != nil {
			first, second = m.alt, &m.braid
			firstInto, secondInto = &o.alt, &o.braid
		}
		if err := one(first, firstInto); err != nil {
			return nil, err
		}
		if second != nil {
			if err := one(second, secondInto); err != nil {
				return nil, err
			}
		}
	}
	if !h.haveTime || !slices.ContainsFunc(m.rows, func(r row) bool { return r.metric == maxRSS }) {
		return o, nil
	}
	h.memoryPass = true
	defer func() { h.memoryPass = false }()
	if err := one(&m.braid, &o.braidMem); err != nil {
		return nil, err
	}
	if m.alt != nil {
		if err := one(m.alt, &o.altMem); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// String renders a sample for the progress log.
func (s sample) String() string {
	out := fmt.Sprintf("wall %s  cpu %s", fmtDuration(float64(s.Wall)), fmtDuration(float64(s.CPU)))
	if s.MaxRSS > 0 {
		out += "  maxrss " + fmtKiB(float64(s.MaxRSS))
	}
	if s.Writes >= 0 {
		out += fmt.Sprintf("  writes %d", s.Writes)
	}
	if s.Reported > 0 {
		out += "  reported " + fmtDuration(float64(s.Reported))
	}
	return out
}
