package compile

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	nl "github.com/braid-router/braid/drivers/netlink"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/sessions/dns"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

// dnsSpec is twoUplinks with isp1 on DHCP and isp2's IPv6 from adverts,
// the aggregation peer with its resolver, and a dns section asking the
// peer, then isp1's resolvers, then an address; isp2 is preferred.
func dnsSpec() *api.RouterSpec {
	s := twoUplinks()
	s.Uplinks[0].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{}}
	s.Uplinks[1].IPv6 = &api.UplinkIPv6{RA: &api.RA{}}
	s.Uplinks[1].Priority = 5
	s.LAN.Addresses = append(s.LAN.Addresses, "fe80::1/64")
	s.Aggregation = &api.Aggregation{TCP: api.TCPDirect, UDP: api.UDPDirect, Peer: &api.AggregationPeer{Address: "203.0.113.9:65101",
		Cipher: "chacha20-ietf-poly1305", Key: &api.Secret{File: "/etc/braid/peer.key"}, DNS: "127.0.0.1:53"}}
	s.DNS = &api.DNS{Listen: []string{"lan", "127.0.0.1"}, Upstreams: []string{"peer", "uplink:isp1", "192.0.2.53", "[2001:db8::53]:5353"},
		AAAA: "keep", FilterAAAA: []string{"example.org"}}
	s.Routes = []api.RouteRule{{Domains: []string{"netflix.com"}, Via: "isp2"}, {To: []string{"203.0.113.0/24"}, Via: "isp1"},
		{Domains: []string{"nflxvideo.net", "netflix.com"}, Via: "isp2"}, {Domains: []string{"example.net"}, Via: "isp1"}}
	return s
}

// dnsFacts: isp1's lease names two resolvers, isp2's adverts one; with
// down, the named uplinks are judged unhealthy.
func dnsFacts(down ...string) facts.Set {
	s := facts.Set{Slots: map[string]facts.Slot{
		"dhcp4/isp1": {Facts: []facts.Fact{{Lease4: &facts.Lease4{Uplink: "isp1", Address: netip.MustParsePrefix("10.101.0.2/24"),
			Gateway: netip.MustParseAddr("10.101.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.101.0.1"), netip.MustParseAddr("10.101.0.53")}}}}},
		"ra/isp2": {Facts: []facts.Fact{{SLAAC: &facts.SLAAC{Uplink: "isp2", Link: "wan2", Address: netip.MustParsePrefix("2001:db8:102::7/64"),
			DNS: []facts.RDNSS{{Addr: netip.MustParseAddr("2001:db8:102::53")}, {Addr: netip.MustParseAddr("fe80::1")}}}}}},
	}}
	for _, u := range down {
		s.Slots["health/"+u] = facts.Slot{Facts: []facts.Fact{{Health: &facts.Health{Uplink: u, Healthy: false}, Process: true}}}
	}
	return s
}

func dnsConfig(t *testing.T, spec *api.RouterSpec, f facts.Set) (dns.Config, string) {
	t.Helper()
	d, err := Router(spec, f)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := sessionOf(d, dns.Kind, dns.Name)
	if !ok {
		t.Fatalf("no session[dns/resolver] in %v", d.Sessions)
	}
	if s.Address() != "session[dns/resolver]" {
		t.Errorf("address %s", s.Address())
	}
	return s.Config.(dns.Config), s.Wait
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func res(name, addr, uplink string, mark uint32) upstream.Resolver {
	return upstream.Resolver{Name: name, Addr: netip.MustParseAddrPort(addr), Uplink: uplink, Mark: mark}
}

// The forwarder's configuration, field by field: where it listens (the
// LAN's addresses braid holds, not the link-local one, then the explicit
// one), its upstreams expanded in the spec's order, the fallback of
// every healthy uplink's resolvers by priority but those upstreams
// already (isp1's: once each in the pool and in status), the AAAA policy
// and the per-domain egress by uplink.
func TestCompileDNS(t *testing.T) {
	cfg, wait := dnsConfig(t, dnsSpec(), dnsFacts())
	if wait != "" {
		t.Errorf("wait %q", wait)
	}
	want := dns.Config{
		Listen: addrs("192.168.50.1", "2001:db8:50::1", "127.0.0.1"),
		Port:   53,
		Upstreams: []upstream.Resolver{
			{Name: "peer", Addr: netip.MustParseAddrPort("127.0.0.1:53"), Peer: true},
			res("uplink:isp1", "10.101.0.1:53", "isp1", 7101),
			res("uplink:isp1", "10.101.0.53:53", "isp1", 7101),
			res("192.0.2.53", "192.0.2.53:53", "", 0),
			res("[2001:db8::53]:5353", "[2001:db8::53]:5353", "", 0),
		},
		Fallback: []upstream.Resolver{
			res("uplink:isp2", "[2001:db8:102::53]:53", "isp2", 7102),
			res("uplink:isp2", "[fe80::1%wan2]:53", "isp2", 7102),
		},
		Peer:       &dns.Peer{Address: "203.0.113.9:65101", Cipher: "chacha20-ietf-poly1305", Key: &api.Secret{File: "/etc/braid/peer.key"}},
		AAAA:       "keep",
		FilterAAAA: []string{"example.org"},
		Egress: []dns.Egress{
			{Uplink: "isp2", Domains: []string{"netflix.com", "nflxvideo.net"}, Set4: "egress_isp2_v4", Set6: "egress_isp2_v6"},
			{Uplink: "isp1", Domains: []string{"example.net"}, Set4: "egress_isp1_v4", Set6: "egress_isp1_v6"},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}
}

// An unhealthy uplink's resolvers leave the upstreams and the fallback;
// when every uplink is unhealthy none is withdrawn (health.go), so
// their resolvers are used again rather than none.
func TestCompileDNSHealth(t *testing.T) {
	cfg, _ := dnsConfig(t, dnsSpec(), dnsFacts("isp1"))
	for _, r := range append(cfg.Upstreams, cfg.Fallback...) {
		if r.Uplink == "isp1" {
			t.Errorf("unhealthy isp1's resolver %v is used", r)
		}
	}
	if len(cfg.Upstreams) != 3 || len(cfg.Fallback) != 2 {
		t.Errorf("upstreams %v, fallback %v", cfg.Upstreams, cfg.Fallback)
	}
	cfg, _ = dnsConfig(t, dnsSpec(), dnsFacts("isp1", "isp2"))
	if len(cfg.Upstreams) != 5 || len(cfg.Fallback) != 2 {
		t.Errorf("all unhealthy: upstreams %v, fallback %v", cfg.Upstreams, cfg.Fallback)
	}
	// Nothing learnt yet: the peer and the addresses, no fallback.
	cfg, _ = dnsConfig(t, dnsSpec(), facts.Set{})
	if len(cfg.Upstreams) != 3 || len(cfg.Fallback) != 0 {
		t.Errorf("no leases: upstreams %v, fallback %v", cfg.Upstreams, cfg.Fallback)
	}
}

// "lan" follows the delegated prefix: the box's address in it joins the
// listen addresses when it comes.
func TestCompileDNSListensOnTheDelegatedAddress(t *testing.T) {
	spec := pdSpec(1)
	spec.DNS = &api.DNS{Listen: []string{"lan"}}
	cfg, _ := dnsConfig(t, spec, facts.Set{})
	if want := addrs("192.168.50.1", "2001:db8:50::1"); !reflect.DeepEqual(cfg.Listen, want) {
		t.Errorf("before the prefix: listen %v, want %v", cfg.Listen, want)
	}
	cfg, _ = dnsConfig(t, spec, delegated("dhcp6/isp2", "uplink/isp2", "wan2", "2001:db8:d200:100::/56"))
	if want := addrs("192.168.50.1", "2001:db8:50::1", "2001:db8:d200:101::1"); !reflect.DeepEqual(cfg.Listen, want) {
		t.Errorf("with the prefix: listen %v, want %v", cfg.Listen, want)
	}
}

// With the LAN's link missing, there is nowhere to listen: the session
// waits for it.
func TestCompileDNSWaitsForTheLAN(t *testing.T) {
	spec := twoUplinks()
	spec.DNS = &api.DNS{Listen: []string{"lan"}}
	f := facts.Set{Slots: map[string]facts.Slot{"kernel/links": {Facts: []facts.Fact{{Interface: &facts.Interface{Name: "lan0"}, Process: true}}}}}
	cfg, wait := dnsConfig(t, spec, f)
	if wait != "link lan0" || len(cfg.Listen) != 0 {
		t.Errorf("wait %q, listen %v", wait, cfg.Listen)
	}
}

// routes[].domains with no dns section say that nothing fills their sets.
func TestCompileDomainsWithoutDNS(t *testing.T) {
	spec := twoUplinks()
	spec.Routes = []api.RouteRule{{Domains: []string{"netflix.com"}, Via: "isp2"}}
	d, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sessionOf(d, dns.Kind, dns.Name); ok {
		t.Error("a dns session without a dns section")
	}
	if len(d.Notes) != 1 || d.Notes[0].Section != "routes[0].domains" || !strings.Contains(d.Notes[0].Message, "no dns section") {
		t.Errorf("notes %v", d.Notes)
	}
}

// intercept hands the LAN's DNS to other addresses, UDP and TCP, both
// families, to the forwarder's transparent sockets by tproxy in the
// proxy's chain, marked for the proxy's local delivery; the forwarder
// listens there. Alone (no proxy steering: no aggregation, or its peer
// not proven up), the chain holds its rules only, and it and the
// delivery are the forwarder's; with the proxy steering, its rules come
// before anything lets traffic go direct, DNS is never proxied, and the
// chain and the delivery are kept while either session runs, each once.
// No DNAT is left.
func TestCompileDNSIntercept(t *testing.T) {
	const (
		dnsOwner   = "dns/resolver "
		proxyOwner = "proxy/aggregation "
		both       = "proxy/aggregation+dns/resolver "
	)
	rules := []string{
		`nft.rule[inet braid prerouting_tproxy:dns-intercept-udp-v4] rule=iifname "lan0" fib daddr type != local udp dport 53 meta l4proto udp tproxy ip to :7153 meta mark set 0x00001c16 return`,
		`nft.rule[inet braid prerouting_tproxy:dns-intercept-tcp-v4] rule=iifname "lan0" fib daddr type != local tcp dport 53 meta l4proto tcp tproxy ip to :7153 meta mark set 0x00001c16 return`,
		`nft.rule[inet braid prerouting_tproxy:dns-intercept-udp-v6] rule=iifname "lan0" fib daddr type != local udp dport 53 meta l4proto udp tproxy ip6 to :7153 meta mark set 0x00001c16 return`,
		`nft.rule[inet braid prerouting_tproxy:dns-intercept-tcp-v6] rule=iifname "lan0" fib daddr type != local tcp dport 53 meta l4proto tcp tproxy ip6 to :7153 meta mark set 0x00001c16 return`,
	}
	delivery := []string{
		"route[7190 0.0.0.0/0 metric 0] type=local dev=lo",
		"route[7190 ::/0 metric 1024] type=local dev=lo",
		"rule[inet pref 6900 fwmark 0x1c16] lookup=7190",
		"rule[inet6 pref 6900 fwmark 0x1c16] lookup=7190",
	}
	chain := "nft.chain[inet braid prerouting_tproxy] type=filter hook=prerouting priority=mangle + 1 policy=accept"
	prefixed := func(p string, ss []string) []string {
		var out []string
		for _, s := range ss {
			out = append(out, p+s)
		}
		return out
	}
	// once checks that each of want is among the bound objects, once.
	once := func(t *testing.T, d reconcile.Desired, want []string) {
		t.Helper()
		got := bound(t, d.Resources)
		for _, w := range want {
			if n := len(slices.DeleteFunc(slices.Clone(got), func(g string) bool { return g != w })); n != 1 {
				t.Errorf("%q %d times in\n%s", w, n, strings.Join(got, "\n"))
			}
		}
		wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), nil, []string{"prerouting_nat", "dnat ip"})
	}
	spec := dnsSpec()
	spec.DNS.Listen = []string{"127.0.0.1", "lan"}
	spec.DNS.Intercept = true

	t.Run("alone", func(t *testing.T) {
		// The proxy's steering waits for the peer: intercept is alone in
		// the chain.
		spec.Aggregation.TCP, spec.Aggregation.UDP = api.TCPProxy, api.UDPPeer
		d := mustRouter(t, spec, facts.Set{})
		want := append(prefixed(dnsOwner, delivery), dnsOwner+chain)
		want = append(want, prefixed(dnsOwner, rules)...)
		if got := bound(t, d.Resources); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("bound\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		once(t, d, want)
		if cfg, _ := dnsConfig(t, spec, facts.Set{}); cfg.InterceptPort != dns.InterceptPort {
			t.Errorf("the forwarder's intercept port %d", cfg.InterceptPort)
		}
		// No aggregation at all: the same.
		s := dnsSpec()
		s.DNS.Intercept, s.Aggregation, s.DNS.Upstreams = true, nil, []string{"192.0.2.53"}
		once(t, mustRouter(t, s, facts.Set{}), want)
	})

	t.Run("with the proxy", func(t *testing.T) {
		spec.Aggregation.TCP, spec.Aggregation.UDP = api.TCPProxy, api.UDPPeer
		d := compileUp(t, spec)
		once(t, d, append(append(prefixed(both, delivery), both+chain), prefixed(dnsOwner, rules)...))
		once(t, d, []string{
			proxyOwner + "nft.rule[inet braid prerouting_tproxy:dns-udp] rule=udp dport 53 return",
			proxyOwner + "nft.rule[inet braid prerouting_tproxy:dns-tcp] rule=tcp dport 53 return",
		})
		// The order: nothing that lets traffic go direct before the
		// intercept, and DNS never reaches the proxy's tproxy rules.
		var ids []string
		for _, r := range d.Resources {
			if rl, ok := plan.Unbound(r).(nft.Rule); ok && rl.Chain == nft.ChainTProxy {
				ids = append(ids, rl.ID)
			}
		}
		wantOrder := "not-lan reply dns-intercept-udp-v4 dns-intercept-tcp-v4 dns-intercept-udp-v6 dns-intercept-tcp-v6 marked local dns-udp dns-tcp "
		if !strings.HasPrefix(strings.Join(ids, " "), wantOrder) {
			t.Errorf("tproxy chain %v, want it to start with %s", ids, wantOrder)
		}
	})

	t.Run("without a listen address", func(t *testing.T) {
		// The transparent sockets need no address: the forwarder runs,
		// answering only what it intercepts, with the same rules. With
		// the LAN's link missing too.
		s := dnsSpec()
		s.DNS.Listen, s.DNS.Intercept = nil, true
		s.Aggregation.TCP, s.Aggregation.UDP = api.TCPProxy, api.UDPPeer
		cfg, wait := dnsConfig(t, s, facts.Set{})
		if wait != "" || len(cfg.Listen) != 0 || cfg.InterceptPort != dns.InterceptPort {
			t.Errorf("wait %q, listen %v, intercept port %d", wait, cfg.Listen, cfg.InterceptPort)
		}
		want := append(prefixed(dnsOwner, delivery), dnsOwner+chain)
		once(t, mustRouter(t, s, facts.Set{}), append(want, prefixed(dnsOwner, rules)...))
		s.DNS.Listen = []string{"lan"}
		missing := facts.Set{Slots: map[string]facts.Slot{"kernel/links": {Facts: []facts.Fact{{Interface: &facts.Interface{Name: "lan0"}, Process: true}}}}}
		if cfg, wait := dnsConfig(t, s, missing); wait != "" || len(cfg.Listen) != 0 || cfg.InterceptPort != dns.InterceptPort {
			t.Errorf("the LAN's link missing: wait %q, listen %v, intercept port %d", wait, cfg.Listen, cfg.InterceptPort)
		}
	})

	t.Run("port forwards keep their DNAT", func(t *testing.T) {
		s := dnsSpec()
		s.DNS.Intercept = true
		s.Firewall = &api.Firewall{Forward: []api.PortForward{{Port: 8080, To: "192.168.50.10:80"}}}
		d := mustRouter(t, s, facts.Set{})
		wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), []string{
			"nft.chain[inet braid prerouting_nat]", "dnat ip to 192.168.50.10:80"}, []string{"prerouting_nat:dns"})
		for _, b := range bound(t, d.Resources) {
			if strings.Contains(b, "prerouting_nat") {
				t.Errorf("bound: %s", b)
			}
		}
	})

	t.Run("without intercept", func(t *testing.T) {
		s := dnsSpec()
		d := mustRouter(t, s, facts.Set{})
		wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), nil, []string{"dns-intercept", "prerouting_tproxy", "fwmark 0x1c16"})
		if cfg, _ := dnsConfig(t, s, facts.Set{}); cfg.InterceptPort != 0 {
			t.Errorf("the forwarder's intercept port %d", cfg.InterceptPort)
		}
		// The proxy steers DNS like the rest.
		s.Aggregation.TCP = api.TCPProxy
		wantInAndNot(t, strings.Join(addresses(compileUp(t, s).Resources), "\n"), nil, []string{"dns-intercept", "prerouting_tproxy:dns-"})
	})

	t.Run("refused", func(t *testing.T) {
		s := dnsSpec()
		s.DNS.Intercept = true
		s.Firewall = &api.Firewall{Open: []api.OpenPort{{Port: dns.InterceptPort}}}
		if _, err := Router(s, facts.Set{}); err == nil || !strings.Contains(err.Error(), "firewall.open[0]") {
			t.Errorf("the intercept port opened to the WAN: %v", err)
		}
		s = dnsSpec()
		s.DNS.Intercept = true
		s.Uplinks[0].Table = nl.TableProxy
		if _, err := Router(s, facts.Set{}); err == nil || !strings.Contains(err.Error(), "uplinks[isp1].table") {
			t.Errorf("an uplink on the delivery's table: %v", err)
		}
	})
}

func mustRouter(t *testing.T, spec *api.RouterSpec, f facts.Set) reconcile.Desired {
	t.Helper()
	d, err := Router(spec, f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A new lease's resolvers change the session's configuration: an update
// of session[dns/resolver], not a new session.
func TestCompileDNSFollowsTheLease(t *testing.T) {
	spec := dnsSpec()
	f := dnsFacts()
	a, _ := dnsConfig(t, spec, f)
	f.Slots["dhcp4/isp1"].Facts[0].Lease4.DNS = addrs("10.101.0.54")
	f.Slots["dhcp4/isp1"].Facts[0].Expires = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := dnsConfig(t, spec, f)
	if reflect.DeepEqual(a.Upstreams, b.Upstreams) || b.Upstreams[1] != res("uplink:isp1", "10.101.0.54:53", "isp1", 7101) {
		t.Errorf("upstreams after the new lease: %v", b.Upstreams)
	}
}

// The LAN's adverts name, as its resolver, only addresses the forwarder
// listens on: the box's in each advertised /64, the delegated one
// included once it is there.
func TestCompileDNSAdvertisedResolverIsServed(t *testing.T) {
	spec := advertiseSpec(true, true)
	spec.DNS = &api.DNS{Listen: []string{"lan"}}
	for _, f := range []facts.Set{facts.Set{}, sixpeFacts(true, true)} {
		adv, _, ok := advertiseConfig(t, spec, f)
		if !ok || len(adv.DNS) == 0 {
			t.Fatalf("no resolver advertised: %+v", adv)
		}
		cfg, _ := dnsConfig(t, spec, f)
		for _, a := range adv.DNS {
			if !slices.Contains(cfg.Listen, a) {
				t.Errorf("the adverts name %s, where the forwarder does not listen (%v)", a, cfg.Listen)
			}
		}
	}
}

// Nothing in the input chain lets the WAN side (the uplinks, the 6PE
// tunnel) reach port 53: what arrives there is dropped, whatever the
// resolver listens on.
func TestCompileDNSNeverFromTheWAN(t *testing.T) {
	spec := tunnelSpec(1)
	spec.DNS = &api.DNS{Listen: []string{"lan"}, Intercept: true}
	spec.Firewall = &api.Firewall{Open: []api.OpenPort{{Port: 22, Proto: "tcp"}}}
	d := mustRouter(t, spec, sixpeFacts(true, true))
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{
		`nft.rule[inet braid input:drop-isp1]`, `nft.rule[inet braid input:drop-isp2]`, `nft.rule[inet braid input:drop-tunnel-sixpe]`,
	}, []string{"dport 53 accept"})
}

// An address the WAN side holds is never listened on, whatever names it:
// an uplink's DHCP lease or SLAAC address (facts validation cannot see),
// even while the uplink's link is missing; the forwarder listens on the
// rest, and a note names the dns.listen entry and the uplink (or the
// tunnel). Without the lease, the same address is no uplink's and is
// listened on.
func TestCompileDNSNeverListensOnAnUplink(t *testing.T) {
	linkMissing := func(f facts.Set, link string) facts.Set {
		return f.With("kernel/links", []facts.Fact{{Interface: &facts.Interface{Name: link}, Process: true}})
	}
	for _, tt := range []struct {
		what    string
		listen  []string
		facts   facts.Set
		want    []netip.Addr
		section string // the note's; "": no note
		holder  string // what the note says holds the address
		tunnel  bool   // the spec with the 6PE tunnel out of isp1
	}{
		{"isp1's lease", []string{"lan", "10.101.0.2"}, dnsFacts(),
			addrs("192.168.50.1", "2001:db8:50::1"), "dns.listen[1]", "10.101.0.2 is uplink isp1's address (its DHCP lease)", false},
		{"isp2's SLAAC address", []string{"2001:db8:102::7", "lan"}, dnsFacts(),
			addrs("192.168.50.1", "2001:db8:50::1"), "dns.listen[0]", "2001:db8:102::7 is uplink isp2's address (SLAAC)", false},
		{"isp1's lease, its link missing", []string{"10.101.0.2", "127.0.0.1"}, linkMissing(dnsFacts(), "wan1"),
			addrs("127.0.0.1"), "dns.listen[0]", "10.101.0.2 is uplink isp1's address (its DHCP lease)", false},
		{"isp2's static address", []string{"10.102.0.2", "127.0.0.1"}, dnsFacts(),
			addrs("127.0.0.1"), "dns.listen[0]", "10.102.0.2 is uplink isp2's address", false},
		{"no lease: no uplink's", []string{"10.101.0.2"}, facts.Set{},
			addrs("10.101.0.2"), "", "", false},
		{"the tunnel's address", []string{"127.0.0.1", "fe80::1234"}, factsOf(lease1, tun),
			addrs("127.0.0.1"), "dns.listen[1]", "fe80::1234 is tunnel sixpe's address", true},
	} {
		t.Run(tt.what, func(t *testing.T) {
			spec := dnsSpec()
			if tt.tunnel {
				spec = sixpeSpec()
				spec.DNS = &api.DNS{Upstreams: []string{"192.0.2.53"}}
			}
			spec.DNS.Listen = tt.listen
			d, err := Router(spec, tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			s, ok := sessionOf(d, dns.Kind, dns.Name)
			if !ok {
				t.Fatal("no session[dns/resolver]")
			}
			if got := s.Config.(dns.Config).Listen; !slices.Equal(got, tt.want) {
				t.Errorf("listen %v, want %v", got, tt.want)
			}
			var notes []plan.Note
			for _, n := range d.Notes {
				if strings.HasPrefix(n.Section, "dns.listen") {
					notes = append(notes, n)
				}
			}
			want := tt.holder + ": braid's resolver never listens on the WAN side"
			switch {
			case tt.section == "" && len(notes) != 0:
				t.Errorf("notes %v", notes)
			case tt.section != "" && (len(notes) != 1 || notes[0].Section != tt.section || !strings.HasPrefix(notes[0].Message, want)):
				t.Errorf("notes %v, want one on %s starting %q", notes, tt.section, want)
			}
		})
	}
}
