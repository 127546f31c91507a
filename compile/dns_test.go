package compile

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
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
// every healthy uplink's resolvers by priority, the AAAA policy and the
// per-domain egress by uplink.
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
			res("uplink:isp1", "10.101.0.1:53", "isp1", 7101),
			res("uplink:isp1", "10.101.0.53:53", "isp1", 7101),
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
	if len(cfg.Upstreams) != 5 || len(cfg.Fallback) != 4 {
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

// intercept redirects the LAN's DNS to other addresses, UDP and TCP, each
// family to the first LAN address braid's resolver listens on (never
// 127.0.0.1, which is not on the LAN), leaves what is for the box's own
// addresses alone, and is process-bound to the forwarder; the proxy's
// steering lets DNS through to it.
func TestCompileDNSIntercept(t *testing.T) {
	spec := dnsSpec()
	spec.DNS.Listen = []string{"127.0.0.1", "lan"}
	spec.DNS.Intercept = true
	spec.Aggregation.TCP, spec.Aggregation.UDP = api.TCPProxy, api.UDPPeer
	d, err := Router(spec, peerUp(spec.Aggregation.Peer.Address))
	if err != nil {
		t.Fatal(err)
	}
	const owner = "dns/resolver "
	want := []string{
		owner + "nft.chain[inet braid prerouting_nat] type=nat hook=prerouting priority=dstnat policy=accept",
		owner + `nft.rule[inet braid prerouting_nat:dns-intercept-local] rule=iifname "lan0" fib daddr type local return`,
		owner + `nft.rule[inet braid prerouting_nat:dns-intercept-udp-v4] rule=iifname "lan0" meta nfproto ipv4 udp dport 53 dnat ip to 192.168.50.1:53`,
		owner + `nft.rule[inet braid prerouting_nat:dns-intercept-tcp-v4] rule=iifname "lan0" meta nfproto ipv4 tcp dport 53 dnat ip to 192.168.50.1:53`,
		owner + `nft.rule[inet braid prerouting_nat:dns-intercept-udp-v6] rule=iifname "lan0" meta nfproto ipv6 udp dport 53 dnat ip6 to [2001:db8:50::1]:53`,
		owner + `nft.rule[inet braid prerouting_nat:dns-intercept-tcp-v6] rule=iifname "lan0" meta nfproto ipv6 tcp dport 53 dnat ip6 to [2001:db8:50::1]:53`,
	}
	var got []string
	for _, b := range bound(t, d.Resources) {
		if strings.HasPrefix(b, owner) {
			got = append(got, b)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("intercept\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantInAndNot(t, strings.Join(bound(t, d.Resources), "\n"), []string{
		"proxy/aggregation nft.rule[inet braid prerouting_tproxy:dns-udp] rule=udp dport 53 return",
		"proxy/aggregation nft.rule[inet braid prerouting_tproxy:dns-tcp] rule=tcp dport 53 return",
	}, nil)

	// With a port forward, the chain is the firewall's; only the rules
	// are bound.
	spec.Firewall = &api.Firewall{Forward: []api.PortForward{{Port: 8080, To: "192.168.50.10:80"}}}
	d = mustRouter(t, spec, peerUp(spec.Aggregation.Peer.Address))
	wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), []string{"nft.chain[inet braid prerouting_nat]"}, nil)
	for _, b := range bound(t, d.Resources) {
		if strings.Contains(b, "nft.chain[inet braid prerouting_nat]") || strings.Contains(b, "forward-") {
			t.Errorf("bound: %s", b)
		}
	}

	// Without intercept: no redirection, and the proxy steers DNS too.
	spec.DNS.Intercept = false
	d = mustRouter(t, spec, peerUp(spec.Aggregation.Peer.Address))
	wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), nil, []string{"dns-intercept", "prerouting_tproxy:dns-"})
}

// A LAN with no IPv6 braid listens on: IPv4 intercepted, IPv6 not, with
// a note.
func TestCompileDNSInterceptOneFamily(t *testing.T) {
	spec := twoUplinks()
	spec.LAN.Addresses = spec.LAN.Addresses[:1]
	spec.DNS = &api.DNS{Listen: []string{"lan"}, Intercept: true}
	d := mustRouter(t, spec, facts.Set{})
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{"dns-intercept-udp-v4", "dns-intercept-tcp-v4"}, []string{"dns-intercept-udp-v6"})
	if len(d.Notes) != 1 || d.Notes[0].Section != "dns.intercept" || d.Notes[0].Waiting {
		t.Errorf("notes %v", d.Notes)
	}
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
