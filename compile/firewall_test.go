package compile

import (
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	nft "github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/reconcile/plan"
)

// nftLines renders the nftables resources of a desired state.
func nftLines(rs []plan.Resource) []string {
	var out []string
	for _, r := range rs {
		switch r.(type) {
		case nft.Table, nft.Chain, nft.Set, nft.Rule:
			out = append(out, r.Address()+" "+plan.Describe(r))
		}
	}
	return out
}

// wantStateRules is how a braid filter chain starts, as nftLines shows
// it: established and related traffic, the ICMP and ICMPv6 errors
// (RFC 4890), then a drop of invalid packets.
func wantStateRules(chain string) []string {
	rule := func(name, text string) string {
		return "nft.rule[inet braid " + chain + ":" + name + "] rule=" + text
	}
	return []string{
		rule("established", "ct state established,related accept"),
		rule("icmp-destination-unreachable", "icmp type destination-unreachable accept"),
		rule("icmp-time-exceeded", "icmp type time-exceeded accept"),
		rule("icmp-parameter-problem", "icmp type parameter-problem accept"),
		rule("icmpv6-destination-unreachable", "icmpv6 type destination-unreachable accept"),
		rule("icmpv6-packet-too-big", "icmpv6 type packet-too-big accept"),
		rule("icmpv6-time-exceeded", "icmpv6 type time-exceeded accept"),
		rule("icmpv6-parameter-problem", "icmpv6 type parameter-problem accept"),
		rule("invalid", "ct state invalid counter drop"),
	}
}

// wantInputICMP is the ICMP and ICMPv6 an input chain accepts after its
// management.allow (RFC 4890: echo, neighbour discovery, MLD from
// link-local sources), as nftLines shows it.
var wantInputICMP = []string{
	"nft.rule[inet braid input:icmp-echo-request] rule=icmp type echo-request accept",
	"nft.rule[inet braid input:icmpv6-echo-request] rule=icmpv6 type echo-request accept",
	"nft.rule[inet braid input:icmpv6-echo-reply] rule=icmpv6 type echo-reply accept",
	"nft.rule[inet braid input:icmpv6-nd-router-solicit] rule=icmpv6 type nd-router-solicit accept",
	"nft.rule[inet braid input:icmpv6-nd-router-advert] rule=icmpv6 type nd-router-advert accept",
	"nft.rule[inet braid input:icmpv6-nd-neighbor-solicit] rule=icmpv6 type nd-neighbor-solicit accept",
	"nft.rule[inet braid input:icmpv6-nd-neighbor-advert] rule=icmpv6 type nd-neighbor-advert accept",
	"nft.rule[inet braid input:icmpv6-mld-listener-query] rule=ip6 saddr fe80::/10 icmpv6 type mld-listener-query accept",
	"nft.rule[inet braid input:icmpv6-mld-listener-report] rule=ip6 saddr fe80::/10 icmpv6 type mld-listener-report accept",
	"nft.rule[inet braid input:icmpv6-mld-listener-done] rule=ip6 saddr fe80::/10 icmpv6 type mld-listener-done accept",
	"nft.rule[inet braid input:icmpv6-mld2-listener-report] rule=ip6 saddr fe80::/10 icmpv6 type mld2-listener-report accept",
}

// TestCompileFirewallLab is the whole of braid's table for specs/lab.yaml,
// as the plan shows it (and as nft lists it: the rule texts are nft's).
func TestCompileFirewallLab(t *testing.T) {
	d := compileLab(t)
	want := slices.Concat([]string{
		"nft.table[inet braid] state=active",
		"nft.set[inet braid allow_v4] type=ipv4_addr flags=interval elements=1",
		"nft.set[inet braid allow_v6] type=ipv6_addr flags=interval elements=1",
		"nft.set[inet braid egress_isp1_v4] type=ipv4_addr flags=timeout elements=session-owned",
		"nft.set[inet braid egress_isp1_v6] type=ipv6_addr flags=timeout elements=session-owned",
		"nft.set[inet braid egress_isp2_v4] type=ipv4_addr flags=timeout elements=session-owned",
		"nft.set[inet braid egress_isp2_v6] type=ipv6_addr flags=timeout elements=session-owned",
		"nft.chain[inet braid prerouting_mangle] type=filter hook=prerouting priority=mangle policy=accept",
		"nft.chain[inet braid prerouting_nat] type=nat hook=prerouting priority=dstnat policy=accept",
		"nft.chain[inet braid input] type=filter hook=input priority=filter policy=accept",
		"nft.chain[inet braid forward] type=filter hook=forward priority=filter policy=accept",
		"nft.chain[inet braid postrouting_nat] type=nat hook=postrouting priority=srcnat policy=accept",
		"nft.rule[inet braid prerouting_mangle:restore-isp1] rule=ct mark 0x00001bbd meta mark set ct mark",
		"nft.rule[inet braid prerouting_mangle:restore-isp2] rule=ct mark 0x00001bbe meta mark set ct mark",
		"nft.rule[inet braid prerouting_mangle:egress-isp1-v4] rule=ct state new ip daddr @egress_isp1_v4 meta mark set 0x00001bbd ct mark set 0x00001bbd",
		"nft.rule[inet braid prerouting_mangle:egress-isp1-v6] rule=ct state new ip6 daddr @egress_isp1_v6 meta mark set 0x00001bbd ct mark set 0x00001bbd",
		"nft.rule[inet braid prerouting_mangle:egress-isp2-v4] rule=ct state new ip daddr @egress_isp2_v4 meta mark set 0x00001bbe ct mark set 0x00001bbe",
		"nft.rule[inet braid prerouting_mangle:egress-isp2-v6] rule=ct state new ip6 daddr @egress_isp2_v6 meta mark set 0x00001bbe ct mark set 0x00001bbe",
		"nft.rule[inet braid prerouting_nat:forward-tcp-8080-isp1] rule=iifname \"wan1\" tcp dport 8080 dnat ip to 192.168.50.10:8080",
		"nft.rule[inet braid prerouting_nat:forward-tcp-8080-isp2] rule=iifname \"wan2\" tcp dport 8080 dnat ip to 192.168.50.10:8080",
	}, wantStateRules("input"), []string{
		"nft.rule[inet braid input:loopback] rule=iifname \"lo\" accept",
		"nft.rule[inet braid input:lan] rule=iifname \"lan0\" accept",
		"nft.rule[inet braid input:allow-v4] rule=ip saddr @allow_v4 accept",
		"nft.rule[inet braid input:allow-v6] rule=ip6 saddr @allow_v6 accept",
	}, wantInputICMP, []string{
		"nft.rule[inet braid input:dhcpv4-isp1] rule=iifname \"wan1\" udp dport 68 accept",
		"nft.rule[inet braid input:dhcpv6-isp1] rule=iifname \"wan1\" ip6 saddr fe80::/10 udp dport 546 accept",
		"nft.rule[inet braid input:dhcpv4-isp2] rule=iifname \"wan2\" udp dport 68 accept",
		"nft.rule[inet braid input:dhcpv6-isp2] rule=iifname \"wan2\" ip6 saddr fe80::/10 udp dport 546 accept",
		"nft.rule[inet braid input:open-tcp-2222-isp1] rule=iifname \"wan1\" tcp dport 2222 accept",
		"nft.rule[inet braid input:open-tcp-2222-isp2] rule=iifname \"wan2\" tcp dport 2222 accept",
		"nft.rule[inet braid input:drop-isp1] rule=iifname \"wan1\" counter drop",
		"nft.rule[inet braid input:drop-isp2] rule=iifname \"wan2\" counter drop",
	}, wantStateRules("forward"), []string{
		"nft.rule[inet braid forward:icmpv6-echo-request] rule=icmpv6 type echo-request accept",
		"nft.rule[inet braid forward:icmpv6-echo-reply] rule=icmpv6 type echo-reply accept",
		"nft.rule[inet braid forward:lan-isp1] rule=iifname \"lan0\" oifname \"wan1\" accept",
		"nft.rule[inet braid forward:lan-isp2] rule=iifname \"lan0\" oifname \"wan2\" accept",
		"nft.rule[inet braid forward:dnat] rule=ct status dnat accept",
		"nft.rule[inet braid forward:forward-tcp-8080-isp1] rule=iifname \"wan1\" ip6 daddr 2001:db8:50::10 tcp dport 8080 accept",
		"nft.rule[inet braid forward:forward-tcp-8080-isp2] rule=iifname \"wan2\" ip6 daddr 2001:db8:50::10 tcp dport 8080 accept",
		"nft.rule[inet braid forward:drop-isp1] rule=iifname \"wan1\" counter drop",
		"nft.rule[inet braid forward:drop-isp2] rule=iifname \"wan2\" counter drop",
		"nft.rule[inet braid postrouting_nat:masquerade-isp1-192.168.50.0/24] rule=oifname \"wan1\" ip saddr 192.168.50.0/24 masquerade",
		"nft.rule[inet braid postrouting_nat:masquerade-isp2-192.168.50.0/24] rule=oifname \"wan2\" ip saddr 192.168.50.0/24 masquerade",
	})
	if got := nftLines(d.Resources); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, n := range d.Notes {
		if n.Section == "firewall" || n.Section == "management.allow" {
			t.Errorf("note %s: the firewall is converged now", n)
		}
	}
}

func TestCompileFirewall(t *testing.T) {
	tests := []struct {
		name     string
		firewall *api.Firewall
		edit     func(s *api.RouterSpec)
		want     []string // lines that must be present
		absent   []string // addresses that must not be
		err      string
	}{
		{
			name:     "open with sources: one rule per uplink and source prefix",
			firewall: &api.Firewall{Open: []api.OpenPort{{Port: 22, Proto: "tcp", From: []string{"198.51.100.0/24", "2001:db8:aaaa::/48"}}}},
			want: []string{
				`nft.rule[inet braid input:open-tcp-22-isp1-from-198.51.100.0/24] rule=iifname "wan1" ip saddr 198.51.100.0/24 tcp dport 22 accept`,
				`nft.rule[inet braid input:open-tcp-22-isp1-from-2001:db8:aaaa::/48] rule=iifname "wan1" ip6 saddr 2001:db8:aaaa::/48 tcp dport 22 accept`,
				`nft.rule[inet braid input:open-tcp-22-isp2-from-198.51.100.0/24] rule=iifname "wan2" ip saddr 198.51.100.0/24 tcp dport 22 accept`,
			},
		},
		{
			name:     "proto defaults to tcp",
			firewall: &api.Firewall{Open: []api.OpenPort{{Port: 22}}, Forward: []api.PortForward{{Port: 80, To: "192.168.50.9:80"}}},
			want: []string{
				`nft.rule[inet braid input:open-tcp-22-isp1] rule=iifname "wan1" tcp dport 22 accept`,
				`nft.rule[inet braid prerouting_nat:forward-tcp-80-isp1] rule=iifname "wan1" tcp dport 80 dnat ip to 192.168.50.9:80`,
			},
		},
		{
			name:     "IPv4 forward with a source keeps only IPv4 sources",
			firewall: &api.Firewall{Forward: []api.PortForward{{Port: 8443, Proto: "tcp", To: "192.168.50.20:443", From: []string{"203.0.113.0/24", "2001:db8::/32"}}}},
			want: []string{
				`nft.rule[inet braid prerouting_nat:forward-tcp-8443-isp1-from-203.0.113.0/24] rule=iifname "wan1" ip saddr 203.0.113.0/24 tcp dport 8443 dnat ip to 192.168.50.20:443`,
			},
			absent: []string{"from-2001:db8::/32"},
		},
		{
			name:     "UDP IPv6 forward: an accept in forward, no NAT",
			firewall: &api.Firewall{Forward: []api.PortForward{{Port: 51820, Proto: "udp", To: "[2001:db8:50::20]:51820"}}},
			want: []string{
				`nft.rule[inet braid forward:forward-udp-51820-isp1] rule=iifname "wan1" ip6 daddr 2001:db8:50::20 udp dport 51820 accept`,
			},
			absent: []string{"prerouting_nat"},
		},
		{
			name:     "IPv6 forward to another port",
			firewall: &api.Firewall{Forward: []api.PortForward{{Port: 8443, Proto: "tcp", To: "[2001:db8:50::20]:443"}}},
			err:      "firewall.forward[0]: IPv6 is routed, never NATed: a forward to [2001:db8:50::20]:443 keeps its port, so port must be 443, not 8443",
		},
		{
			name: "one port forwarded twice",
			firewall: &api.Firewall{Forward: []api.PortForward{
				{Port: 80, Proto: "tcp", To: "192.168.50.9:80"},
				{Port: 80, Proto: "tcp", To: "192.168.50.10:80"},
			}},
			err: "firewall.forward[1]: tcp port 80 is already forwarded to an IPv4 host by firewall.forward[0]",
		},
		{
			name:     "IPv6 forward with only IPv4 sources",
			firewall: &api.Firewall{Forward: []api.PortForward{{Port: 443, Proto: "tcp", To: "[2001:db8:50::20]:443", From: []string{"203.0.113.0/24"}}}},
			err:      "firewall.forward[0].from: no IPv6 prefix for a forward to an IPv6 host",
		},
		{
			name: "no LAN: no LAN rules, no NAT",
			edit: func(s *api.RouterSpec) { s.LAN = nil },
			want: []string{`nft.rule[inet braid input:drop-isp1] rule=iifname "wan1" counter drop`},
			absent: []string{
				"nft.rule[inet braid input:lan]", "nft.rule[inet braid forward:lan-isp1]",
				"nft.chain[inet braid postrouting_nat]", "masquerade",
			},
		},
		{
			name: "management.allow of one family: one set",
			edit: func(s *api.RouterSpec) {
				s.Management = &api.Management{Allow: []string{"192.168.50.0/24", "10.0.0.0/8", "10.1.0.0/16"}}
			},
			want:   []string{"nft.set[inet braid allow_v4] type=ipv4_addr flags=interval elements=2", "nft.rule[inet braid input:allow-v4] rule=ip saddr @allow_v4 accept"},
			absent: []string{"allow_v6"},
		},
		{
			name: "an uplink's table is its mark",
			edit: func(s *api.RouterSpec) { s.Uplinks[1].Table = 7150 },
			want: []string{
				"nft.rule[inet braid prerouting_mangle:restore-isp2] rule=ct mark 0x00001bee meta mark set ct mark",
				"nft.rule[inet braid prerouting_mangle:egress-isp2-v4] rule=ct state new ip daddr @egress_isp2_v4 meta mark set 0x00001bee ct mark set 0x00001bee",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := twoUplinks()
			spec.Firewall = tt.firewall
			if tt.edit != nil {
				tt.edit(spec)
			}
			d, ok := compileOrWantErr(t, spec, tt.err)
			if !ok {
				return
			}
			got := strings.Join(nftLines(d.Resources), "\n")
			wantInAndNot(t, got, tt.want, tt.absent)
		})
	}
}
