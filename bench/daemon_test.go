package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
)

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var out []time.Duration
		for _, v := range vs {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // 100 ms down to 1 ms
	}
	for _, c := range []struct {
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(3, 1, 2), 50, 2 * time.Millisecond},
		{ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{ms(4, 1, 3, 2), 100, 4 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 100, 100 * time.Millisecond},
		{hundred, 0.1, 1 * time.Millisecond},
	} {
		in := slices.Clone(c.ds)
		if got := percentile(c.ds, c.p); got != c.want {
			t.Errorf("p%v of %d values = %v, want %v", c.p, len(c.ds), got, c.want)
		}
		if !slices.Equal(in, c.ds) {
			t.Errorf("percentile reordered its input")
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 37.
	stat := "4242 (braid (run) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 37 0 0 20 0 9 0 123 1000000 2000 18446744073709551615\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 2870*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 2.87s", got, err)
	}
	for _, bad := range []string{"", "4242 braid S 1", "4242 (braid) S 1 2 3", "4242 (braid) S 1 4242 4242 0 -1 4194560 1200 0 0 0 x 37 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tbraid\nVmPeak:\t 1300000 kB\nVmHWM:\t   20000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 8000 kB\n"
	if got, err := parseVmRSS([]byte(status)); err != nil || got != 12345 {
		t.Errorf("parseVmRSS = %d, %v; want 12345", got, err)
	}
	for _, bad := range []string{"Name:\tkthreadd\n", "VmRSS:\t 12 MB\n", "VmRSS:\n"} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("parseVmRSS(%q) accepted", bad)
		}
	}
}

// The daemon benchmark's spec is valid, and its first uplink's default
// route in the main table is what repairRoute looks for.
func TestDaemonSpec(t *testing.T) {
	var b bytes.Buffer
	if err := writeDaemonSpec(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := api.Parse("daemon.yaml", b.Bytes())
	if err != nil {
		t.Fatalf("generated spec is invalid: %v", err)
	}
	d, err := compile.Compile(doc, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, r := range d.Resources {
		if rt, ok := r.(nl.Route); ok && rt.Table == nl.TableMain && rt.Dst.Bits() == 0 && rt.Dst.Addr().Is4() && rt.Metric == uplinks[0].priority {
			found++
		}
	}
	if found != 1 {
		t.Errorf("%d IPv4 default routes of metric %d in the main table, want 1", found, uplinks[0].priority)
	}
}

func TestDaemonTableVerdicts(t *testing.T) {
	ms := time.Millisecond
	r := &daemonResult{
		repairs: []time.Duration{20 * ms, 30 * ms, 150 * ms}, ipAdd: []time.Duration{2 * ms, 2 * ms, 3 * ms},
		passes: []time.Duration{2 * ms}, netlinkAdd: []time.Duration{40 * time.Microsecond}, window: time.Minute, idleCPU: 60 * ms,
		idleRSS: 20 << 10, monitorRSS: 2 << 10, afterRSS: 21 << 10,
	}
	var out strings.Builder
	missed := writeDaemonTable(&out, r)
	if len(missed) != 1 || !strings.Contains(missed[0], "p99") {
		t.Errorf("missed %q, want the p99 row alone\n%s", missed, out.String())
	}
	for _, want := range []string{"| 150 ms `braid run` | 3.0 ms `ip route add` | 50.00 | < 100 ms | **missed** |",
		"| 20.0 MiB `braid run` | 2.0 MiB `ip monitor all` | 10.00 | < 30 MB | met |",
		"60.0 ms (0.100% of a core) `braid run` | 0.0 ms `ip monitor all` | — |",
		"idle daemon, 60 s: ", "| 40 µs (40 µs) `RTM_NEWROUTE` |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	r.idleRSS = 29500 // KiB: 30.2 MB
	if missed := writeDaemonTable(&strings.Builder{}, r); len(missed) != 2 {
		t.Errorf("29,500 KiB passes the 30 MB goal: %q", missed)
	}
}
