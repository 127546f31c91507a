package policy

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary packed answers to both policies: neither may
// panic, the global filter must leave no IPv6 address behind, and every
// egress element must be a routable address with at least the minimum
// timeout, for a configured uplink.
func FuzzAnswer(f *testing.F) {
	for _, rrs := range [][]string{
		{"www.example.com. 60 IN CNAME edge.cdn.net.", "edge.cdn.net. 60 IN AAAA 2001:db8::1", "edge.cdn.net. 60 IN A 192.0.2.1"},
		{`svc.example.com. 300 IN HTTPS 1 . alpn="h2" ipv4hint="192.0.2.1" ipv6hint="2001:db8::1"`},
		{`www.example.com. 300 IN SVCB 0 svc.example.net.`, "www.example.com. 60 IN RRSIG AAAA 13 3 60 20300101000000 20200101000000 1234 example.com. AAAA"},
	} {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeAAAA)
		m.Response = true
		for _, s := range rrs {
			r, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, r)
		}
		m.Ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: "ns.example.com."}}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	all, err := NewAAAAFilter("filter", nil)
	if err != nil {
		f.Fatal(err)
	}
	some, err := NewAAAAFilter("keep", []string{"example.com", "cdn.net"})
	if err != nil {
		f.Fatal(err)
	}
	egress, err := NewEgress([]Route{{Uplink: "a", Domains: []string{"example.com"}}, {Uplink: "b", Domains: []string{"cdn.net", "."}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return
		}
		for _, e := range egress.Elements(m) {
			if e.Uplink != "a" && e.Uplink != "b" {
				t.Errorf("element for uplink %q", e.Uplink)
			}
			if !routable(e.Addr) || e.Addr.Is4In6() {
				t.Errorf("element address %s", e.Addr)
			}
			if e.Timeout < MinEgressTimeout {
				t.Errorf("element timeout %s", e.Timeout)
			}
		}
		m2 := m.Copy()
		some.Apply(m2)
		m2.Pack()
		all.Apply(m)
		if len(m.Question) == 0 {
			return
		}
		for _, sec := range [][]dns.RR{m.Answer, m.Extra} {
			for _, r := range sec {
				switch r := r.(type) {
				case *dns.AAAA:
					t.Errorf("AAAA left: %s", r)
				case *dns.HTTPS:
					if hasV6Hint(r.Value) {
						t.Errorf("ipv6hint left: %s", r)
					}
				case *dns.SVCB:
					if hasV6Hint(r.Value) {
						t.Errorf("ipv6hint left: %s", r)
					}
				}
			}
		}
		m.Pack()
	})
}
