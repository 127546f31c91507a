package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// compiled generates the spec at sc, parses it as braid does and compiles
// it.
func compiled(t *testing.T, sc scale) (*api.Document, reconcile.Desired) {
	t.Helper()
	var b bytes.Buffer
	if err := writeSpec(&b, sc); err != nil {
		t.Fatal(err)
	}
	if b.Len() > api.MaxFileSize {
		t.Fatalf("spec is %d bytes, over braid's limit of %d", b.Len(), api.MaxFileSize)
	}
	doc, err := api.Parse("bench.yaml", b.Bytes())
	if err != nil {
		t.Fatalf("generated spec is invalid: %v", err)
	}
	d, err := compile.Compile(doc, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	return doc, d
}

func TestSpecYieldsIssueScale(t *testing.T) {
	doc, d := compiled(t, issueScale)
	var to4, to6, from int
	for _, r := range doc.Router.Routes {
		for _, s := range r.To {
			p := netip.MustParsePrefix(s)
			switch {
			case p.Addr().Is4() && p.Bits() == 24:
				to4++
			case p.Addr().Is6() && p.Bits() == 48:
				to6++
			default:
				t.Errorf("unexpected destination %s", p)
			}
		}
		from += len(r.From)
	}
	if to4 != 5000 || to6 != 5000 || from != 100 {
		t.Errorf("spec has %d IPv4 /24 + %d IPv6 /48 destinations and %d sources, want 5000 + 5000 and 100", to4, to6, from)
	}
	steer, sources := 0, 0
	for _, r := range d.Resources {
		switch r := r.(type) {
		case nl.Route:
			if r.Table == nl.TableSteer {
				steer++
			}
		case nl.Rule:
			if r.Priority == nl.PrioFrom {
				sources++
			}
		}
	}
	if steer != 10000 || sources != 100 {
		t.Errorf("compiled to %d steering routes and %d source rules, want 10000 and 100", steer, sources)
	}
}

// planFromEmpty is the plan document braid prints for d in a namespace
// where nothing exists yet.
func planFromEmpty(d reconcile.Desired) *planDoc {
	doc := &planDoc{}
	for _, r := range d.Resources {
		after := map[string]string{}
		for _, f := range r.Fields() {
			after[f.Name] = f.Display()
		}
		doc.Changes = append(doc.Changes, planChange{Action: string(plan.Create), Address: r.Address(), After: after})
	}
	doc.Summary.Add = len(doc.Changes)
	return doc
}

func TestMirrorHasTheSameObjects(t *testing.T) {
	_, d := compiled(t, issueScale)
	m, err := mirror(planFromEmpty(d))
	if err != nil {
		t.Fatal(err)
	}
	want := counts{}
	for _, r := range d.Resources {
		kind, _, _ := splitAddress(r.Address())
		want[kind]++
	}
	for _, k := range kinds {
		if m.Plan[k] != want[k] {
			t.Errorf("plan counts %d %s, compile made %d", m.Plan[k], k, want[k])
		}
		mirrored := want[k]
		if k == kindSysctl {
			mirrored = 0
		}
		if m.Mirrored[k] != mirrored {
			t.Errorf("mirror made %d %s, want %d", m.Mirrored[k], k, mirrored)
		}
	}
	if got := m.Mirrored.total(); got != len(m.Main)+len(m.Rules6) {
		t.Errorf("%d mirrored objects but %d batch lines", got, len(m.Main)+len(m.Rules6))
	}
	if m.Mirrored[kindRoute] < 10000 || m.Mirrored[kindRule] < 100 {
		t.Errorf("mirror has %d routes and %d rules, want at least 10000 and 100", m.Mirrored[kindRoute], m.Mirrored[kindRule])
	}
	lines := map[string]int{}
	for _, l := range append(append([]string{}, m.Main...), m.Rules6...) {
		verb := strings.Join(strings.Fields(l)[:2], " ")
		lines[verb]++
		if (verb == "route add" || verb == "rule add") && !strings.HasSuffix(l, " proto 98") {
			t.Errorf("%q does not carry braid's protocol", l)
		}
	}
	if lines["route add"] != want[kindRoute] || lines["rule add"] != want[kindRule] ||
		lines["address add"] != want[kindAddress] || lines["link set"] != want[kindLink] {
		t.Errorf("batch lines %v, want the plan's %v", lines, want)
	}
	for _, l := range m.Main {
		if strings.HasPrefix(l, "rule add") && strings.Contains(l, ":") {
			t.Errorf("IPv6 rule %q in the batch run without -6", l)
		}
	}
}

func TestIPLine(t *testing.T) {
	for _, tc := range []struct {
		address string
		after   map[string]string
		want    string
		v6rule  bool
	}{
		{"link[wan1]", map[string]string{"up": "true"}, "link set dev wan1 up", false},
		{"link[wan1]", map[string]string{"up": "true", "mtu": "1492"}, "link set dev wan1 up mtu 1492", false},
		{"link[wan1]", map[string]string{"up": "true", "mac": "02:00:5e:10:00:01"}, "link set dev wan1 up address 02:00:5e:10:00:01", false},
		{"sysctl[net.ipv4.ip_forward]", map[string]string{"value": "1"}, "", false},
		{"address[wan1 10.201.0.2/24]", nil, "address add 10.201.0.2/24 brd + dev wan1 noprefixroute", false},
		{"address[wan1 10.201.0.2/31]", nil, "address add 10.201.0.2/31 dev wan1 noprefixroute", false},
		{"address[wan1 fd00:201::2/64]", nil, "address add fd00:201::2/64 dev wan1 noprefixroute nodad", false},
		{"route[main 10.201.0.0/24 metric 0]", map[string]string{"dev": "wan1", "src": "10.201.0.2"},
			"route add 10.201.0.0/24 dev wan1 table main metric 0 src 10.201.0.2 proto 98", false},
		{"route[7100 2001:db8::/48 metric 1024]", map[string]string{"via": "fd00:201::1", "dev": "wan1"},
			"route add 2001:db8::/48 via fd00:201::1 dev wan1 table 7100 metric 1024 proto 98", false},
		{"rule[inet pref 7000]", map[string]string{"lookup": "main", "suppress_prefixlength": "0"},
			"rule add pref 7000 lookup main suppress_prefixlength 0 proto 98", false},
		{"rule[inet6 pref 7100 from fd10::/64]", map[string]string{"lookup": "7101"},
			"rule add pref 7100 from fd10::/64 lookup 7101 proto 98", true},
		{"mptcp.limits", map[string]string{"subflows": "3", "add_addr_accepted": "2"},
			"mptcp limits set subflows 3 add_addr_accepted 2", false},
		{"mptcp.endpoint[fd00:201::2]", map[string]string{"dev": "wan1", "flags": "subflow backup"},
			"mptcp endpoint add fd00:201::2 dev wan1 subflow backup", false},
	} {
		kind, inner, ok := splitAddress(tc.address)
		if !ok {
			t.Fatalf("splitAddress(%q) failed", tc.address)
		}
		got, v6rule, err := ipLine(kind, inner, tc.after)
		if err != nil || got != tc.want || v6rule != tc.v6rule {
			t.Errorf("ipLine(%s) = %q, %v, %v; want %q, %v", tc.address, got, v6rule, err, tc.want, tc.v6rule)
		}
	}
}

func TestMirrorRefusesDeletes(t *testing.T) {
	doc := &planDoc{Changes: []planChange{{Action: "delete", Address: "route[main 0.0.0.0/0 metric 10]"}}}
	if _, err := mirror(doc); err == nil {
		t.Error("mirror accepted a delete in a plan from empty")
	}
}

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []sample {
		var out []sample
		for _, x := range v {
			out = append(out, sample{Wall: time.Duration(x) * time.Millisecond, Writes: -1})
		}
		return out
	}
	for _, tc := range []struct {
		in               []sample
		median, min, max time.Duration
	}{
		{ms(5, 1, 3), 3 * time.Millisecond, time.Millisecond, 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 2500 * time.Microsecond, time.Millisecond, 4 * time.Millisecond},
	} {
		s := summarize(wall, tc.in)
		if !s.ok || s.median != float64(tc.median) || s.min != float64(tc.min) || s.max != float64(tc.max) {
			t.Errorf("summarize(%v) = %+v", tc.in, s)
		}
	}
	if s := summarize(writes, ms(1, 2)); s.ok {
		t.Errorf("unwatched samples summarized as writes: %+v", s)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 100: "100", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHostRoutesSpec(t *testing.T) {
	var b bytes.Buffer
	if err := writeHostRoutesSpec(&b); err != nil {
		t.Fatal(err)
	}
	doc, err := api.Parse("hosts.yaml", b.Bytes())
	if err != nil {
		t.Fatalf("generated spec is invalid: %v", err)
	}
	if n := len(doc.Router.Routes); n != 1 {
		t.Fatalf("%d routes: entries, want one", n)
	}
	seen := map[netip.Prefix]bool{}
	for _, s := range doc.Router.Routes[0].To {
		p := netip.MustParsePrefix(s)
		if !p.Addr().Is4() || p.Bits() != 32 || seen[p] {
			t.Errorf("destination %s: want distinct IPv4 /32s", p)
		}
		seen[p] = true
	}
	d, err := compile.Compile(doc, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	steer := 0
	for _, r := range d.Resources {
		if r, ok := r.(nl.Route); ok && r.Table == nl.TableSteer && r.Dst.Bits() == 32 {
			steer++
		}
	}
	if len(seen) != hostRoutes || steer != hostRoutes {
		t.Errorf("%d destinations compiled to %d steering routes, want %d", len(seen), steer, hostRoutes)
	}
}
