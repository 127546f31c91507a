package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	"github.com/braid-router/braid/facts"
)

// The box's spec is one braid accepts and compiles: the benchmark must
// not find out at run time.
func TestDNSSpecCompiles(t *testing.T) {
	var b bytes.Buffer
	if err := writeDNSSpec(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := api.Parse("dns-box.yaml", b.Bytes())
	if err != nil {
		t.Fatalf("the DNS benchmark's spec is invalid: %v\n%s", err, b.String())
	}
	if _, err := compile.Compile(doc, facts.Set{}); err != nil {
		t.Fatalf("compile the DNS benchmark's spec: %v", err)
	}
	if got := doc.Router.DNS.Listen; len(got) != 1 || got[0] != dnsBraid {
		t.Errorf("dns.listen %v, want [%s]", got, dnsBraid)
	}
}

// Every name the runs ask is in the upstream's configuration with the
// address the load generator expects.
func TestUnboundConfServesTheNames(t *testing.T) {
	const cached, egress = 300, 3000
	var b strings.Builder
	if err := writeUnboundConf(&b, "/tmp/x", cached, egress); err != nil {
		t.Fatal(err)
	}
	conf := b.String()
	lines := map[string]bool{}
	for l := range strings.SplitSeq(conf, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for i := range egress {
		q := dnsEgressName(i)
		if !lines[fmt.Sprintf("local-data: \"%s %d IN A %s\"", q.name, dnsUncachedTTL, q.want)] {
			t.Fatalf("no local-data for %s", q.name)
		}
		if !strings.HasSuffix(q.name, "."+dnsEgressZone+".") {
			t.Fatalf("%s is not under %s, the suffix the spec routes", q.name, dnsEgressZone)
		}
	}
	for i := range cached {
		q := dnsCachedName(i)
		if !lines[fmt.Sprintf("local-data: \"%s %d IN A %s\"", q.name, dnsTTL, q.want)] {
			t.Fatalf("no local-data for %s", q.name)
		}
	}
	for _, want := range []string{
		fmt.Sprintf("local-zone: \"%s.\" redirect", dnsUncached),
		fmt.Sprintf("local-data: \"%s. %d IN A %s\"", dnsUncached, dnsUncachedTTL, dnsUncachedAddr),
		"interface: " + dnsUpstream,
	} {
		if !lines[want] {
			t.Errorf("no %q in the configuration", want)
		}
	}
}

// No two egress names share an address, across more names than 16 bits
// count: each answer must add its own element.
func TestEgressNamesDistinct(t *testing.T) {
	seen := map[netip.Addr]string{}
	for i := range 70000 {
		q := dnsEgressName(i)
		if !netip.MustParsePrefix("100.64.0.0/10").Contains(q.want) {
			t.Fatalf("egress name %d resolves to %s, outside 100.64.0.0/10", i, q.want)
		}
		if other, dup := seen[q.want]; dup {
			t.Fatalf("%s and %s both resolve to %s", other, q.name, q.want)
		}
		seen[q.want] = q.name
	}
}

// nft 1.0.6's `nft -j list sets inet`: two sets, one with elements.
const nftSetsJSON = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "egress_x4", "table": "t", "type": "ipv4_addr", "handle": 1, "flags": ["timeout"], "timeout": 600, "elem": [{"elem": {"val": "100.64.0.1", "expires": 599}}, {"elem": {"val": "100.64.0.2", "timeout": 3600, "expires": 3599}}]}}, {"set": {"family": "inet", "name": "other", "table": "t", "type": "ipv4_addr", "handle": 2}}]}`

func TestParseNftSets(t *testing.T) {
	sets, err := parseNftSets([]byte(nftSetsJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0].Name != "egress_x4" || sets[0].Table != "t" || len(sets[0].Elem) != 2 || sets[1].Name != "other" || len(sets[1].Elem) != 0 {
		t.Errorf("parsed %+v", sets)
	}
	if _, err := parseNftSets([]byte("table inet t {")); err == nil {
		t.Error("parsed text output as JSON")
	}
}

func TestParseProcStat(t *testing.T) {
	idle, total, err := parseProcStat([]byte("cpu  100 5 50 1000 20 3 7 0 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if idle != 1020 || total != 1185 {
		t.Errorf("idle %d, total %d; want 1020, 1185", idle, total)
	}
	if _, _, err := parseProcStat([]byte("intr 1 2 3\n")); err == nil {
		t.Error("parsed a line that is not the cpu line")
	}
}

// The verdict: braid's median rate at least dnsmasq's and its median p99
// lower, cached and uncached; the egress rows have no goal.
func TestWriteDNSTableVerdict(t *testing.T) {
	s := func(qps float64, p99 time.Duration) dnsSample {
		return dnsSample{qps: qps, p50: p99 / 4, p99: p99, sent: 1000}
	}
	res := func(braid []dnsSample) *dnsResult {
		r := &dnsResult{samples: map[string]map[string][]dnsSample{}, conc: 64, window: time.Second, egressNames: 10}
		for _, m := range dnsModes {
			r.samples[m] = map[string][]dnsSample{
				dnsTargetDnsmasq:  {s(1000, 10*time.Millisecond), s(1100, 9*time.Millisecond), s(900, 11*time.Millisecond)},
				dnsTargetUpstream: {s(5000, time.Millisecond)},
			}
			if braid != nil {
				r.samples[m][dnsTargetBraid] = braid
			}
		}
		return r
	}
	for _, c := range []struct {
		name   string
		braid  []dnsSample
		missed int
	}{
		{"faster and lower p99", []dnsSample{s(1200, 5*time.Millisecond), s(800, 20*time.Millisecond), s(1000, 8*time.Millisecond)}, 0},
		{"as fast, higher p99", []dnsSample{s(1000, 12*time.Millisecond), s(1000, 12*time.Millisecond), s(1000, 12*time.Millisecond)}, 2},
		{"slower, lower p99", []dnsSample{s(999, time.Millisecond), s(999, time.Millisecond), s(999, time.Millisecond)}, 2},
		{"not measured", nil, 4},
		{"every run failed", []dnsSample{}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := res(c.braid)
			r.failed = map[string]map[string][]string{}
			for _, m := range dnsModes {
				r.failed[m] = map[string][]string{}
			}
			if c.braid == nil {
				r.braidMissing = "no forwarder"
			} else if len(c.braid) == 0 {
				for _, m := range dnsModes {
					r.failed[m][dnsTargetBraid] = []string{"7 of 100 timed out"}
				}
			}
			var b strings.Builder
			missed := writeDNSTable(&b, r)
			if len(missed) != c.missed {
				t.Errorf("missed %d goals, want %d: %v\n%s", len(missed), c.missed, missed, b.String())
			}
			if c.braid == nil && !strings.Contains(b.String(), "not measured: no forwarder") {
				t.Errorf("the table does not say why braid was not measured:\n%s", b.String())
			}
			if c.braid != nil && len(c.braid) == 0 && strings.Count(b.String(), "no figure: 1 run(s) left out, too many failures (first: 7 of 100 timed out)") != len(dnsModes) {
				t.Errorf("the table does not show braid's failed runs in each mode:\n%s", b.String())
			}
		})
	}
}

func TestProcState(t *testing.T) {
	for stat, want := range map[string]byte{
		"1234 (braid) T 1 2 3": 'T',
		"1234 (a (b) c) S 1 2": 'S',
		"1234 (x)":             0,
		"no parenthesis":       0,
	} {
		if got := procState([]byte(stat)); got != want {
			t.Errorf("procState(%q) = %q, want %q", stat, got, want)
		}
	}
}
