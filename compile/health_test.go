package compile

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
)

// verdicts is the facts of health trackers: uplink name -> healthy.
func verdicts(v map[string]bool, extra ...facts.Fact) facts.Set {
	s := facts.Set{Slots: map[string]facts.Slot{}}
	for u, healthy := range v {
		s.Slots["health/"+u] = facts.Slot{Facts: []facts.Fact{{Health: &facts.Health{Uplink: u, Healthy: healthy}, Process: true}}}
	}
	if len(extra) > 0 {
		s.Slots["other/x"] = facts.Slot{Facts: extra}
	}
	return s
}

// healthSpec is twoUplinks with MPTCP on both, a routes: entry of each
// kind via each uplink, and the lab's LAN (IPv4 and a global IPv6 /64).
func healthSpec() *api.RouterSpec {
	s := twoUplinks()
	for i := range s.Uplinks {
		s.Uplinks[i].MPTCP = &api.MPTCP{Mode: api.MPTCPSubflow}
	}
	s.Routes = []api.RouteRule{
		{To: []string{"198.51.100.0/25"}, Via: "isp1"},
		{From: []string{"192.168.50.20/32"}, Via: "isp1"},
		{To: []string{"198.51.100.128/25"}, Via: "isp2"},
		{From: []string{"192.168.50.30/32"}, Via: "isp2"},
	}
	return s
}

// What a withdrawn uplink loses, and what it keeps.
var (
	isp2Withdrawn = []string{
		"route[main 0.0.0.0/0 metric 20]",
		"route[7100 198.51.100.128/25 metric 0]",
		"rule[inet pref 7100 from 192.168.50.30/32]",
		"rule[inet pref 7050 fwmark 0x1bbe",
		"rule[inet6 pref 7050 fwmark 0x1bbe",
		"nft.rule[inet braid prerouting_mangle:egress-isp2-v4]",
		"nft.rule[inet braid prerouting_mangle:egress-isp2-v6]",
	}
	isp2Kept = []string{
		"route[7102 0.0.0.0/0 metric 0]",
		"rule[inet pref 7200 from 10.102.0.2/32]",
		"address[wan2 10.102.0.2/24]",
		"nft.set[inet braid egress_isp2_v4]",
		// Its connections keep their mark, which no policy rule maps
		// while it is withdrawn: they follow the main table.
		"nft.rule[inet braid prerouting_mangle:restore-isp2]",
		"nft.rule[inet braid postrouting_nat:masquerade-isp2-192.168.50.0/24]",
		"mptcp.limits subflows=3 add_addr_accepted=2",
	}
	// An unhealthy uplink's endpoints are backup (unhealthyEndpoint).
	isp1Backup    = []string{"mptcp.endpoint[10.101.0.2] dev=wan1 flags=subflow backup", "mptcp.endpoint[2001:db8:101::2] dev=wan1 flags=subflow backup"}
	isp2Backup    = "mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow backup"
	isp1Withdrawn = []string{
		"route[main 0.0.0.0/0 metric 10]",
		"route[main ::/0 metric 10]",
		"route[7100 198.51.100.0/25 metric 0]",
		"rule[inet pref 7100 from 192.168.50.20/32]",
		"rule[inet pref 7050 fwmark 0x1bbd",
		"nft.rule[inet braid prerouting_mangle:egress-isp1-v4]",
	}
	lanReject = `nft.rule[inet braid forward:unhealthy-2001:db8:50::/64] rule=iifname "lan0" ip6 saddr 2001:db8:50::/64 reject with icmpv6 policy-fail`
)

func TestCompileHealthWithdraws(t *testing.T) {
	healthy, err := Router(healthSpec(), facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(addresses(healthy.Resources), "\n") + "\n"
	// The lists above name real objects.
	wantInAndNot(t, all, append(append(slices.Clone(isp2Withdrawn), isp2Kept...), isp1Withdrawn...), []string{"unhealthy-"})

	for _, tt := range []struct {
		name     string
		spec     func(*api.RouterSpec)
		facts    facts.Set
		want     []string
		absent   []string
		sameAsOK bool // the desired state is the healthy one
	}{
		{name: "every uplink healthy", facts: verdicts(map[string]bool{"isp1": true, "isp2": true}), sameAsOK: true},
		{name: "isp2 unhealthy: its routes, rules and marks go, its endpoint is backup",
			facts: verdicts(map[string]bool{"isp1": true, "isp2": false}),
			want:  append(append(slices.Clone(isp2Kept), isp1Withdrawn...), isp2Backup), absent: append(append(slices.Clone(isp2Withdrawn), "unhealthy-"), isp1Backup...)},
		{name: "isp1 unhealthy: the LAN's IPv6 prefix, routed only by isp1, is rejected",
			facts: verdicts(map[string]bool{"isp1": false}),
			want:  append(append(slices.Clone(isp2Withdrawn), isp2Kept...), isp1Backup...), absent: append(slices.Clone(isp1Withdrawn), isp2Backup)},
		{name: "every uplink unhealthy: all stays",
			facts: verdicts(map[string]bool{"isp1": false, "isp2": false}), sameAsOK: true},
		{name: "the other uplinks have no default route: all stays",
			spec: func(s *api.RouterSpec) {
				s.Uplinks[0].IPv4.Static.Gateway, s.Uplinks[0].IPv6.Static.Gateway = "", ""
				s.Routes = nil
			},
			facts:  verdicts(map[string]bool{"isp2": false}),
			want:   []string{"route[main 0.0.0.0/0 metric 20]", "mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow\n"},
			absent: []string{"backup"}},
		{name: "the other uplink waits for its lease: all stays",
			spec: func(s *api.RouterSpec) {
				s.Uplinks[0].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{}}
				s.Uplinks[0].IPv6 = nil
				s.Routes = nil
			},
			facts:  verdicts(map[string]bool{"isp2": false}),
			want:   []string{"route[main 0.0.0.0/0 metric 20]", "mptcp.endpoint[10.102.0.2] dev=wan2 flags=subflow\n"},
			absent: []string{"backup"}},
		{name: "the other uplink has its lease: the unhealthy one goes",
			spec: func(s *api.RouterSpec) {
				s.Uplinks[0].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{}}
				s.Uplinks[0].IPv6 = nil
				s.Routes = nil
			},
			facts: verdicts(map[string]bool{"isp2": false}, facts.Fact{Lease4: &facts.Lease4{Uplink: "isp1",
				Address: netip.MustParsePrefix("10.101.0.9/24"), Gateway: netip.MustParseAddr("10.101.0.1")}}),
			want:   []string{"route[main 0.0.0.0/0 metric 10]", isp2Backup},
			absent: []string{"route[main 0.0.0.0/0 metric 20]"}},
		{name: "both uplinks route IPv6: no reject when one is unhealthy",
			spec: func(s *api.RouterSpec) {
				s.Uplinks[1].IPv6 = &api.UplinkIPv6{Static: &api.Static{Address: "2001:db8:102::2/64", Gateway: "2001:db8:102::1"}}
			},
			facts:  verdicts(map[string]bool{"isp1": false}),
			want:   []string{"route[main ::/0 metric 20]"},
			absent: []string{"unhealthy-", "route[main ::/0 metric 10]", "rule[inet6 pref 7100"}},
		{name: "a ULA LAN prefix is nobody's",
			spec:   func(s *api.RouterSpec) { s.LAN.Addresses = []string{"192.168.50.1/24", "fd00:50::1/64"} },
			facts:  verdicts(map[string]bool{"isp1": false}),
			absent: []string{"unhealthy-"}},
		{name: "a prefix delegated over a tunnel via the unhealthy uplink is rejected",
			spec: func(s *api.RouterSpec) {
				s.LAN.Addresses = []string{"192.168.50.1/24"}
				s.LAN.IPv6 = &api.LANIPv6{FromTunnel: "sixpe", Subnet: 3}
				s.Uplinks[1].IPv6 = &api.UplinkIPv6{Static: &api.Static{Address: "2001:db8:102::2/64", Gateway: "2001:db8:102::1"}}
				s.Tunnels = []api.Tunnel{sixpe("isp1")}
			},
			facts: verdicts(map[string]bool{"isp1": false}, facts.Fact{Prefix: &facts.Prefix{For: "tunnel/sixpe", Prefix: netip.MustParsePrefix("2a02:8400:1000::/56")}}),
			want: []string{`nft.rule[inet braid forward:unhealthy-2a02:8400:1000:3::/64] rule=iifname "lan0" ip6 saddr 2a02:8400:1000:3::/64 reject with icmpv6 policy-fail`,
				// The tunnel's table routes the whole prefix: into the
				// tunnel, or to unreachable.
				"rule[inet6 pref 7040 from 2a02:8400:1000::/56] lookup=7191"},
			absent: []string{"rule[inet6 pref 7100 from 2a02:8400:1000:3::/64]"}},
		{name: "a prefix delegated by the healthy uplink is not",
			spec: func(s *api.RouterSpec) {
				s.LAN.Addresses = []string{"192.168.50.1/24"}
				s.LAN.IPv6 = &api.LANIPv6{FromUplink: "isp2"}
			},
			facts:  verdicts(map[string]bool{"isp1": false}, facts.Fact{Prefix: &facts.Prefix{For: "uplink/isp2", Prefix: netip.MustParsePrefix("2a02:8400:1000::/56")}}),
			absent: []string{"unhealthy-"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := healthSpec()
			if tt.spec != nil {
				tt.spec(spec)
			}
			d, err := Router(spec, tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(addresses(d.Resources), "\n") + "\n"
			if tt.sameAsOK && got != all {
				t.Errorf("desired state differs from the healthy one:\n%s", got)
			}
			want := tt.want
			if strings.Contains(tt.name, "IPv6 prefix, routed only by isp1") {
				want = append(want, lanReject, "rule[inet6 pref 7100 from 2001:db8:50::/64] lookup=7101")
			}
			wantInAndNot(t, got, want, tt.absent)
		})
	}
}

// The reject comes first in forward: established connections from the
// prefix are refused too, and it is the first thing the LAN's IPv6 meets.
func TestCompileHealthRejectFirst(t *testing.T) {
	d, err := Router(healthSpec(), verdicts(map[string]bool{"isp1": false}))
	if err != nil {
		t.Fatal(err)
	}
	var forward []string
	for _, l := range nftLines(d.Resources) {
		if strings.HasPrefix(l, "nft.rule[inet braid forward:") {
			forward = append(forward, l)
		}
	}
	if len(forward) == 0 || forward[0] != lanReject {
		t.Errorf("forward chain starts with %q, want the reject", forward)
	}
}

func TestSubnet64(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tt := range []struct {
		delegated string
		n         int
		want      string // "" for no fit
	}{
		{"2001:db8:aa00::/56", 0, "2001:db8:aa00::/64"},
		{"2001:db8:aa00::/56", 255, "2001:db8:aa00:ff::/64"},
		{"2001:db8:aa00::/56", 256, ""},
		{"2001:db8:aa00::/60", 15, "2001:db8:aa00:f::/64"},
		{"2001:db8:aa00::/60", 16, ""},
		{"2001:db8:aa00::/48", 65535, "2001:db8:aa00:ffff::/64"},
		{"2001:db8:aa00:7::/64", 0, "2001:db8:aa00:7::/64"},
		{"2001:db8:aa00:7::/64", 1, ""},
		{"2001:db8::/32", 70000, "2001:db8:1:1170::/64"},
		{"2001:db8:aa00::/56", -1, ""},
		{"2001:db8:aa00:7::/80", 0, ""},
		{"192.0.2.0/24", 0, ""},
	} {
		got, err := Subnet64(p(tt.delegated), tt.n)
		if (tt.want == "") == (err == nil) || (err == nil && got != p(tt.want)) {
			t.Errorf("Subnet64(%s, %d) = %s, %v; want %q", tt.delegated, tt.n, got, err, tt.want)
		}
	}
}
