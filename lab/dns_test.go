package lab_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// The lab's resolver is unbound in the core, serving the test zone on
// both of its addresses, UDP and TCP, to an ISP (what a box's uplink
// reaches): A and AAAA, a CNAME chain, an HTTPS record's hints, NXDOMAIN
// with the zone's SOA, a short TTL, a TXT record too big for UDP that
// comes whole over TCP; and it logs each query with the client's address.
func TestLabResolver(t *testing.T) {
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.WaitResolver(ctx); err != nil {
		t.Fatal(err)
	}
	ask := func(network, server, name string, qtype uint16) *dns.Msg {
		t.Helper()
		r, err := l.Lookup(ctx, lab.RoleISP1, network, server, name, qtype)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	v4 := net.JoinHostPort(lab.ResolverV4, "53")
	v6 := net.JoinHostPort(lab.ResolverV6, "53")
	for _, server := range []string{v4, v6} {
		for _, network := range []string{"udp", "tcp"} {
			r := ask(network, server, lab.NameServer, dns.TypeA)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != lab.ServerV4 || r.Answer[0].Header().Ttl != lab.TTL {
				t.Errorf("%s %s: A %v", network, server, r.Answer)
			}
		}
	}
	r := ask("udp", v6, lab.NameCNAME, dns.TypeAAAA)
	if len(r.Answer) != 3 || r.Answer[2].(*dns.AAAA).AAAA.String() != lab.ServerV6 {
		t.Errorf("CNAME chain: %v", r.Answer)
	}
	r = ask("udp", v4, lab.NameHTTPS, dns.TypeHTTPS)
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), `ipv4hint="`+lab.ServerV4+`"`) || !strings.Contains(r.Answer[0].String(), `ipv6hint="`+lab.ServerV6+`"`) {
		t.Errorf("HTTPS: %v", r.Answer)
	}
	r = ask("udp", v4, lab.NameMissing, dns.TypeA)
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].(*dns.SOA).Minttl != lab.NegativeTTL {
		t.Errorf("NXDOMAIN: %s", r)
	}
	r = ask("udp", v4, lab.NameShortTTL, dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != lab.ShortTTL {
		t.Errorf("short TTL: %v", r.Answer)
	}
	if r = ask("udp", v4, lab.NameBig, dns.TypeTXT); !r.Truncated {
		t.Errorf("big TXT over UDP not truncated: %d answers", len(r.Answer))
	}
	r = ask("tcp", v4, lab.NameBig, dns.TypeTXT)
	if r.Truncated || len(r.Answer) != 1 || len(r.Answer[0].(*dns.TXT).Txt) != lab.BigTXTStrings {
		t.Errorf("big TXT over TCP: truncated %v, %v", r.Truncated, r.Answer)
	}
	log, err := l.ProcessLog(lab.ResolverProcess)
	if err != nil {
		t.Fatal(err)
	}
	if want := lab.ISP1UpV4 + " " + lab.NameMissing + " A IN"; !strings.Contains(log, want) {
		t.Errorf("unbound's log lacks %q:\n%s", want, log)
	}
}
