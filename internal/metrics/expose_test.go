package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
)

// Label values and help text that need escaping come back whole through
// Prometheus's parser.
func TestExpositionEscapes(t *testing.T) {
	for _, v := range []string{`a"b`, `back\slash`, "new\nline", "ünï ✓", `\"\n`, ""} {
		f := &family{name: "x_total", help: "help with \\ and\nnewline", kind: counter}
		f.add(1, "v", v)
		var b bytes.Buffer
		if err := writeFamilies(&b, []*family{f}); err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(&b)
		if err != nil {
			t.Fatalf("%q: %v\n%s", v, err, b.String())
		}
		got := fams["x_total"]
		if got.GetHelp() != f.help {
			t.Errorf("help %q, want %q", got.GetHelp(), f.help)
		}
		if l := got.GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetValue() != v {
			t.Errorf("label %v, want %q", l, v)
		}
	}
}

// A revision or an uplink name with quotes in it still makes a valid
// exposition (an unescaped one would not parse).
func TestMetricsOddNames(t *testing.T) {
	st := reconcile.Status{Revision: `file "x"` + "\n", Facts: reconcile.FactsStatus{Entries: []facts.Entry{
		{Fact: facts.Fact{Health: &facts.Health{Uplink: `isp\1`, Healthy: true}}}}}}
	fams := scrape(t, New(func() reconcile.Status { return st }))
	if _, ok := value(fams, "braid_spec_revision_info", "revision", st.Revision); !ok {
		t.Errorf("revision %q lost", st.Revision)
	}
	if _, ok := value(fams, "braid_uplink_healthy", "uplink", `isp\1`); !ok {
		t.Error(`uplink isp\1 lost`)
	}
}

// The runtime's and the process's series say what this process is.
func TestMetricsRuntimeAndProcess(t *testing.T) {
	fams := scrape(t, New(func() reconcile.Status { return reconcile.Status{} }))
	for _, name := range []string{"go_goroutines", "go_threads", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes",
		"process_virtual_memory_bytes", "process_open_fds", "process_max_fds"} {
		if v, ok := value(fams, name); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want more than 0", name, v, ok)
		}
	}
	// The process started shortly before this package was initialised
	// (btime is whole seconds, so a second either way).
	start, ok := value(fams, "process_start_time_seconds")
	at := time.Unix(0, int64(start*1e9))
	if !ok || at.After(loaded.Add(time.Second)) || at.Before(loaded.Add(-time.Minute)) {
		t.Errorf("process_start_time_seconds %v (present %v), the package initialised at %v", at, ok, loaded)
	}
	if v, ok := value(fams, "go_info", "version"); !ok || v != 1 {
		t.Errorf("go_info %v (present %v)", v, ok)
	}
}

// loaded is when the test binary initialised this package.
var loaded = time.Now()

func TestParseStat(t *testing.T) {
	line := "1234 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0 123456 4096000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, ok := parseStat([]byte(line))
	if want := (stat{utime: 250, stime: 50, start: 123456, vsize: 4096000, rss: 300}); !ok || st != want {
		t.Errorf("got %+v %v, want %+v", st, ok, want)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", strings.Replace(line, "250", "x", 1)} {
		if _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
