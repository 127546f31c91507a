package metrics

import (
	"bufio"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// braid writes the Prometheus text exposition format (version 0.0.4)
// itself: its metrics are a few dozen series of counters, gauges and one
// histogram, and the client library with its protobuf dependency weighed
// 2.2 MB of a router binary. The tests parse what it writes with
// Prometheus's own parser.

// kind is a family's TYPE.
type kind string

const (
	counter   kind = "counter"
	gauge     kind = "gauge"
	histogram kind = "histogram"
)

// sample is one line: a series of a family, with an optional suffix
// (_bucket, _sum, _count) and label pairs.
type sample struct {
	suffix string
	labels []string // name, value, name, value...
	value  float64
}

// family is a metric's HELP, TYPE and samples, written together.
type family struct {
	name, help string
	kind       kind
	samples    []sample
}

// add appends a sample of the family itself.
func (f *family) add(v float64, labels ...string) {
	f.samples = append(f.samples, sample{labels: labels, value: v})
}

// write writes the family; one without samples is left out.
func (f *family) write(w *bufio.Writer) {
	if len(f.samples) == 0 {
		return
	}
	w.WriteString("# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n")
	w.WriteString("# TYPE " + f.name + " " + string(f.kind) + "\n")
	for _, s := range f.samples {
		w.WriteString(f.name + s.suffix)
		if len(s.labels) > 0 {
			w.WriteByte('{')
			for i := 0; i+1 < len(s.labels); i += 2 {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(s.labels[i] + `="` + labelEscaper.Replace(s.labels[i+1]) + `"`)
			}
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		w.WriteString(formatValue(s.value))
		w.WriteByte('\n')
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// formatValue writes a value as the format wants: Go's shortest float,
// +Inf, -Inf and NaN spelt its way.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// writeFamilies writes the families in order.
func writeFamilies(out io.Writer, fams []*family) error {
	w := bufio.NewWriter(out)
	for _, f := range fams {
		f.write(w)
	}
	return w.Flush()
}

// counterVec counts by label values, safe for concurrent use.
type counterVec struct {
	name, help string
	labels     []string
	mu         sync.Mutex
	counts     map[string]uint64 // label values joined by "\xff"
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{name: name, help: help, labels: labels, counts: map[string]uint64{}}
}

// inc adds one to the series of values (as many as the labels).
func (c *counterVec) inc(values ...string) { c.add(1, values...) }

// add adds n (0 makes the series exist).
func (c *counterVec) add(n uint64, values ...string) {
	c.mu.Lock()
	c.counts[strings.Join(values, "\xff")] += n
	c.mu.Unlock()
}

// family is the counters' family, series in the order of their label
// values.
func (c *counterVec) family() *family {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &family{name: c.name, help: c.help, kind: counter}
	for _, key := range slices.Sorted(maps.Keys(c.counts)) {
		var labels []string
		if len(c.labels) > 0 {
			for i, v := range strings.Split(key, "\xff") {
				labels = append(labels, c.labels[i], v)
			}
		}
		f.add(float64(c.counts[key]), labels...)
	}
	return f
}

// hist is a histogram without labels, safe for concurrent use.
type hist struct {
	name, help string
	bounds     []float64
	mu         sync.Mutex
	counts     []uint64 // per bucket, not cumulative; one more for +Inf
	sum        float64
}

func newHist(name, help string, bounds []float64) *hist {
	return &hist{name: name, help: help, bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// observe counts v in the first bucket whose upper bound is at least v.
func (h *hist) observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.mu.Unlock()
}

func (h *hist) family() *family {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := &family{name: h.name, help: h.help, kind: histogram}
	var n uint64
	for i, c := range h.counts {
		n += c
		le := math.Inf(1)
		if i < len(h.bounds) {
			le = h.bounds[i]
		}
		f.samples = append(f.samples, sample{suffix: "_bucket", labels: []string{"le", formatValue(le)}, value: float64(n)})
	}
	f.samples = append(f.samples, sample{suffix: "_sum", value: h.sum}, sample{suffix: "_count", value: float64(n)})
	return f
}
