package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// msg builds an answer to a question of qtype for qname with the records
// rrs (zone file lines) in the answer section.
func msg(t *testing.T, qname string, qtype uint16, rrs ...string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.Response = true
	for _, s := range rrs {
		m.Answer = append(m.Answer, rr(t, s))
	}
	return m
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return r
}

// texts returns the records' zone file forms.
func texts(rrs []dns.RR) []string {
	var out []string
	for _, r := range rrs {
		out = append(out, r.String())
	}
	return out
}

func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		name, suffix string
		want         bool
	}{
		{"example.com.", "example.com.", true},
		{"a.example.com.", "example.com.", true},
		{"a.b.example.com.", "example.com.", true},
		{"badexample.com.", "example.com.", false},
		{"example.com.", "a.example.com.", false},
		{"com.", "example.com.", false},
		{"example.org.", "example.com.", false},
		{"anything.", ".", true},
		{`a\.example.com.`, "example.com.", false}, // one label "a.example" under com
	} {
		if got := under(tc.name, tc.suffix); got != tc.want {
			t.Errorf("under(%q, %q) = %v, want %v", tc.name, tc.suffix, got, tc.want)
		}
	}
}

func TestChain(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *dns.Msg
		want []string
	}{
		{"no answer", msg(t, "www.Example.com.", dns.TypeA), []string{"www.example.com."}},
		{"mixed case chain", msg(t, "WWW.example.com.", dns.TypeA,
			"www.EXAMPLE.com. 60 IN CNAME Edge.CDN.net.",
			"edge.cdn.net. 60 IN CNAME e1.cdn.NET.",
			"E1.cdn.net. 60 IN A 192.0.2.1"),
			[]string{"www.example.com.", "edge.cdn.net.", "e1.cdn.net."}},
		{"out of order", msg(t, "a.test.", dns.TypeA,
			"b.test. 60 IN CNAME c.test.",
			"a.test. 60 IN CNAME b.test."),
			[]string{"a.test.", "b.test.", "c.test."}},
		{"loop", msg(t, "a.test.", dns.TypeA,
			"a.test. 60 IN CNAME b.test.",
			"b.test. 60 IN CNAME a.test."),
			[]string{"a.test.", "b.test."}},
		{"unrelated cname", msg(t, "a.test.", dns.TypeA,
			"x.test. 60 IN CNAME y.test."),
			[]string{"a.test."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := chain(tc.m); !slices.Equal(got, tc.want) {
				t.Errorf("chain = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewAAAAFilterErrors(t *testing.T) {
	if _, err := NewAAAAFilter("drop", nil); err == nil {
		t.Error("aaaa: drop accepted")
	}
	if _, err := NewAAAAFilter("keep", []string{"bad..name"}); err == nil {
		t.Error("filterAAAA: bad..name accepted")
	}
}

func TestAAAAFilter(t *testing.T) {
	const https = `svc.example.com. 300 IN HTTPS 1 . alpn="h2" ipv4hint="192.0.2.1" ipv6hint="2001:db8::1"`
	const httpsNoV6 = `svc.example.com.	300	IN	HTTPS	1 . alpn="h2" ipv4hint="192.0.2.1"`
	soa := "example.com. 300 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 300"
	for _, tc := range []struct {
		name       string
		mode       string
		suffixes   []string
		m          func() *dns.Msg
		changed    bool
		wantAnswer []string // types and owners after Apply, as "TYPE name"
		wantNs     []string
		check      func(t *testing.T, m *dns.Msg)
	}{
		{
			name: "keep changes nothing", mode: "keep",
			m: func() *dns.Msg {
				return msg(t, "www.example.com.", dns.TypeAAAA, "www.example.com. 60 IN AAAA 2001:db8::1")
			},
			wantAnswer: []string{"AAAA www.example.com."},
		},
		{
			name: "filter empties a AAAA answer", mode: "filter",
			m: func() *dns.Msg {
				m := msg(t, "www.example.com.", dns.TypeAAAA, "www.example.com. 60 IN AAAA 2001:db8::1",
					"www.example.com. 60 IN AAAA 2001:db8::2")
				m.Ns = []dns.RR{rr(t, "example.com. 60 IN NS ns.example.com.")}
				m.Extra = []dns.RR{rr(t, "ns.example.com. 60 IN AAAA 2001:db8::53"), rr(t, "ns.example.com. 60 IN A 192.0.2.53")}
				return m
			},
			changed: true,
			check: func(t *testing.T, m *dns.Msg) {
				if m.Rcode != dns.RcodeSuccess {
					t.Errorf("rcode %s, want NOERROR", dns.RcodeToString[m.Rcode])
				}
				if len(m.Ns) != 0 {
					t.Errorf("authority kept NS records: %v", texts(m.Ns))
				}
				if got := texts(m.Extra); len(got) != 1 || !strings.Contains(got[0], "192.0.2.53") {
					t.Errorf("additional = %v, want only the A record", got)
				}
			},
		},
		{
			name: "filter keeps the upstream's SOA", mode: "filter",
			m: func() *dns.Msg {
				m := msg(t, "www.example.com.", dns.TypeAAAA, "www.example.com. 60 IN AAAA 2001:db8::1")
				m.Ns = []dns.RR{rr(t, soa), rr(t, "example.com. 60 IN NS ns.example.com.")}
				return m
			},
			changed: true,
			wantNs:  []string{"SOA example.com."},
		},
		{
			name: "filter keeps the CNAME chain and drops signatures", mode: "filter",
			m: func() *dns.Msg {
				return msg(t, "www.example.com.", dns.TypeAAAA,
					"www.example.com. 60 IN CNAME edge.cdn.net.",
					"edge.cdn.net. 60 IN AAAA 2001:db8::1",
					"edge.cdn.net. 60 IN RRSIG AAAA 13 3 60 20300101000000 20200101000000 1234 cdn.net. AAAA",
					"www.example.com. 60 IN RRSIG CNAME 13 3 60 20300101000000 20200101000000 1234 example.com. AAAA")
			},
			changed:    true,
			wantAnswer: []string{"CNAME www.example.com.", "RRSIG www.example.com."},
		},
		{
			name: "filter leaves an A answer alone", mode: "filter",
			m: func() *dns.Msg {
				return msg(t, "www.example.com.", dns.TypeA, "www.example.com. 60 IN A 192.0.2.1")
			},
			wantAnswer: []string{"A www.example.com."},
		},
		{
			name: "filter strips ipv6hint, keeps ipv4hint", mode: "filter",
			m:          func() *dns.Msg { return msg(t, "svc.example.com.", dns.TypeHTTPS, https) },
			changed:    true,
			wantAnswer: []string{"HTTPS svc.example.com."},
			check: func(t *testing.T, m *dns.Msg) {
				if got := m.Answer[0].String(); got != httpsNoV6 {
					t.Errorf("HTTPS after filter:\n got %s\nwant %s", got, httpsNoV6)
				}
			},
		},
		{
			name: "filter strips ipv6hint of SVCB in additional", mode: "filter",
			m: func() *dns.Msg {
				m := msg(t, "_dns.resolver.arpa.", dns.TypeSVCB)
				m.Extra = []dns.RR{rr(t, `dns.example.net. 300 IN SVCB 1 . alpn="dot" ipv6hint="2001:db8::53,2001:db8::54"`)}
				return m
			},
			changed: true,
			check: func(t *testing.T, m *dns.Msg) {
				if s := m.Extra[0].String(); strings.Contains(s, "ipv6hint") || !strings.Contains(s, "alpn") {
					t.Errorf("SVCB after filter: %s", s)
				}
			},
		},
		{
			name: "suffix matches mixed case name under it", suffixes: []string{"Example.COM"},
			m: func() *dns.Msg {
				return msg(t, "WWW.example.com.", dns.TypeAAAA, "WWW.example.com. 60 IN AAAA 2001:db8::1")
			},
			changed: true,
		},
		{
			name: "suffix matches the name itself", suffixes: []string{"example.com."},
			m: func() *dns.Msg {
				return msg(t, "example.com.", dns.TypeAAAA, "example.com. 60 IN AAAA 2001:db8::1")
			},
			changed: true,
		},
		{
			name: "suffix does not match badexample.com", suffixes: []string{"example.com"},
			m: func() *dns.Msg {
				return msg(t, "badexample.com.", dns.TypeAAAA, "badexample.com. 60 IN AAAA 2001:db8::1")
			},
			wantAnswer: []string{"AAAA badexample.com."},
		},
		{
			name: "suffix matches through the CNAME chain", suffixes: []string{"cdn.net"},
			m: func() *dns.Msg {
				return msg(t, "www.example.com.", dns.TypeAAAA,
					"www.example.com. 60 IN CNAME edge.CDN.net.",
					"edge.cdn.net. 60 IN AAAA 2001:db8::1")
			},
			changed:    true,
			wantAnswer: []string{"CNAME www.example.com."},
		},
		{
			name: "suffix filters HTTPS of a listed name only", suffixes: []string{"other.org"},
			m:          func() *dns.Msg { return msg(t, "svc.example.com.", dns.TypeHTTPS, https) },
			wantAnswer: []string{"HTTPS svc.example.com."},
			check: func(t *testing.T, m *dns.Msg) {
				if !strings.Contains(m.Answer[0].String(), "ipv6hint") {
					t.Errorf("ipv6hint stripped for an unlisted name: %s", m.Answer[0])
				}
			},
		},
		{
			name: "NXDOMAIN stays NXDOMAIN", mode: "filter",
			m: func() *dns.Msg {
				m := msg(t, "nx.example.com.", dns.TypeAAAA)
				m.Rcode = dns.RcodeNameError
				m.Ns = []dns.RR{rr(t, soa)}
				return m
			},
			wantNs: []string{"SOA example.com."},
			check: func(t *testing.T, m *dns.Msg) {
				if m.Rcode != dns.RcodeNameError {
					t.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewAAAAFilter(tc.mode, tc.suffixes)
			if err != nil {
				t.Fatal(err)
			}
			m := tc.m()
			before := m.Copy()
			shared := slices.Clone(m.Answer) // the records a cache would share
			sharedText := texts(shared)
			if got := f.Apply(m); got != tc.changed {
				t.Errorf("Apply changed = %v, want %v", got, tc.changed)
			}
			var answer []string
			for _, r := range m.Answer {
				answer = append(answer, dns.TypeToString[r.Header().Rrtype]+" "+r.Header().Name)
			}
			if !slices.Equal(answer, tc.wantAnswer) {
				t.Errorf("answer = %v, want %v", answer, tc.wantAnswer)
			}
			if tc.wantNs != nil {
				var ns []string
				for _, r := range m.Ns {
					ns = append(ns, dns.TypeToString[r.Header().Rrtype]+" "+r.Header().Name)
				}
				if !slices.Equal(ns, tc.wantNs) {
					t.Errorf("authority = %v, want %v", ns, tc.wantNs)
				}
			}
			if !tc.changed && m.String() != before.String() {
				t.Errorf("unchanged answer differs:\n%s\nwant\n%s", m, before)
			}
			if !slices.Equal(texts(shared), sharedText) {
				t.Errorf("Apply modified shared records:\n%v\nwas\n%v", texts(shared), sharedText)
			}
			if _, err := m.Pack(); err != nil {
				t.Errorf("filtered answer does not pack: %v", err)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestNewEgressErrors(t *testing.T) {
	if _, err := NewEgress([]Route{{Uplink: "a", Domains: []string{"x.com"}}, {Uplink: "b", Domains: []string{"X.com."}}}); err == nil {
		t.Error("a domain via two uplinks accepted")
	}
	if _, err := NewEgress([]Route{{Uplink: "a", Domains: []string{"x.com"}}, {Uplink: "a", Domains: []string{"x.com"}}}); err != nil {
		t.Errorf("a domain listed twice for one uplink: %v", err)
	}
	if _, err := NewEgress([]Route{{Uplink: "a", Domains: []string{"bad..name"}}}); err == nil {
		t.Error("bad..name accepted")
	}
	if _, err := NewEgress([]Route{{Domains: []string{"x.com"}}}); err == nil {
		t.Error("route without uplink accepted")
	}
}

func TestEgressElements(t *testing.T) {
	e, err := NewEgress([]Route{
		{Uplink: "fibre", Domains: []string{"Example.com", "cdn.net"}},
		{Uplink: "lte", Domains: []string{"video.example.com.", "other.org"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	el := func(uplink, addr string, timeout time.Duration) Element {
		return Element{Uplink: uplink, Addr: netip.MustParseAddr(addr), Timeout: timeout}
	}
	const min = MinEgressTimeout
	for _, tc := range []struct {
		name string
		m    func() *dns.Msg
		want []Element
	}{
		{
			name: "A and AAAA of a listed name, short and long TTL",
			m: func() *dns.Msg {
				return msg(t, "www.example.com.", dns.TypeA,
					"www.example.com. 30 IN A 192.0.2.1",
					"www.example.com. 3600 IN AAAA 2001:db8::1")
			},
			want: []Element{el("fibre", "192.0.2.1", min), el("fibre", "2001:db8::1", time.Hour)},
		},
		{
			name: "mixed case question and owners",
			m: func() *dns.Msg {
				return msg(t, "WWW.EXAMPLE.com.", dns.TypeA, "www.Example.COM. 30 IN A 192.0.2.1")
			},
			want: []Element{el("fibre", "192.0.2.1", min)},
		},
		{
			name: "longest suffix wins",
			m: func() *dns.Msg {
				return msg(t, "a.video.example.com.", dns.TypeA, "a.video.example.com. 60 IN A 198.51.100.1")
			},
			want: []Element{el("lte", "198.51.100.1", min)},
		},
		{
			name: "not under a listed suffix",
			m: func() *dns.Msg {
				return msg(t, "badexample.com.", dns.TypeA, "badexample.com. 60 IN A 192.0.2.1")
			},
		},
		{
			name: "CNAME chain from a listed name to an unlisted one",
			m: func() *dns.Msg {
				return msg(t, "www.other.org.", dns.TypeA,
					"www.other.org. 60 IN CNAME Edge.Akamai.test.",
					"edge.akamai.test. 60 IN CNAME e1.akamai.test.",
					"e1.akamai.test. 20000 IN A 203.0.113.7")
			},
			want: []Element{el("lte", "203.0.113.7", 20000*time.Second)},
		},
		{
			name: "CNAME chain from an unlisted name to a listed one: the first match chooses",
			m: func() *dns.Msg {
				return msg(t, "www.unlisted.test.", dns.TypeA,
					"www.unlisted.test. 60 IN CNAME a.cdn.net.",
					"a.cdn.net. 60 IN A 192.0.2.9")
			},
			want: []Element{el("fibre", "192.0.2.9", min)},
		},
		{
			name: "chain through two listed names: the question's uplink",
			m: func() *dns.Msg {
				return msg(t, "tv.video.example.com.", dns.TypeA,
					"tv.video.example.com. 60 IN CNAME x.cdn.net.",
					"x.cdn.net. 60 IN A 192.0.2.10")
			},
			want: []Element{el("lte", "192.0.2.10", min)},
		},
		{
			name: "records off the chain do not count",
			m: func() *dns.Msg {
				m := msg(t, "www.example.com.", dns.TypeA,
					"www.example.com. 60 IN A 192.0.2.1",
					"evil.test. 60 IN A 198.51.100.66",
					"unrelated.cdn.net. 60 IN A 198.51.100.67")
				m.Extra = []dns.RR{rr(t, "www.example.com. 60 IN A 198.51.100.68")}
				return m
			},
			want: []Element{el("fibre", "192.0.2.1", min)},
		},
		{
			name: "HTTPS with both hints",
			m: func() *dns.Msg {
				return msg(t, "svc.example.com.", dns.TypeHTTPS,
					`svc.example.com. 7200 IN HTTPS 1 . alpn="h3,h2" ipv4hint="192.0.2.1,192.0.2.2" ipv6hint="2001:db8::1"`)
			},
			want: []Element{
				el("fibre", "192.0.2.1", 2*time.Hour), el("fibre", "192.0.2.2", 2*time.Hour),
				el("fibre", "2001:db8::1", 2*time.Hour),
			},
		},
		{
			name: "SVCB behind a CNAME, duplicates keep the longest timeout",
			m: func() *dns.Msg {
				return msg(t, "_dns.other.org.", dns.TypeSVCB,
					"_dns.other.org. 60 IN CNAME _dns.res.test.",
					`_dns.res.test. 60 IN SVCB 1 . alpn="dot" ipv4hint="192.0.2.53"`,
					"_dns.res.test. 5000 IN A 192.0.2.53")
			},
			want: []Element{el("lte", "192.0.2.53", 5000*time.Second)},
		},
		{
			name: "addresses that never lie beyond an uplink",
			m: func() *dns.Msg {
				return msg(t, "www.example.com.", dns.TypeA,
					"www.example.com. 60 IN A 127.0.0.1",
					"www.example.com. 60 IN A 0.0.0.0",
					"www.example.com. 60 IN A 169.254.1.1",
					"www.example.com. 60 IN AAAA fe80::1",
					"www.example.com. 60 IN AAAA ::ffff:192.0.2.4",
					"www.example.com. 60 IN A 224.0.0.1")
			},
			want: []Element{el("fibre", "192.0.2.4", min)},
		},
		{
			name: "NXDOMAIN counts nothing",
			m: func() *dns.Msg {
				m := msg(t, "www.example.com.", dns.TypeA, "www.example.com. 60 IN A 192.0.2.1")
				m.Rcode = dns.RcodeNameError
				return m
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m()
			before := m.String()
			got := e.Elements(m)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Elements =\n%v\nwant\n%v", got, tc.want)
			}
			if m.String() != before {
				t.Errorf("Elements modified the answer")
			}
		})
	}
	var zero *Egress
	if got := zero.Elements(msg(t, "www.example.com.", dns.TypeA, "www.example.com. 60 IN A 192.0.2.1")); got != nil {
		t.Errorf("nil Egress: %v", got)
	}
	if u, ok := e.Uplink("A.Video.Example.com"); !ok || u != "lte" {
		t.Errorf("Uplink = %q, %v", u, ok)
	}
}
