package compile

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp6"
)

// pdSpec is the lab's shape with isp2's IPv6 from adverts and a prefix
// delegated over it, the LAN's IPv6 from that prefix's subnet-th /64.
func pdSpec(subnet int) *api.RouterSpec {
	spec := twoUplinks()
	spec.Uplinks[1].IPv6 = &api.UplinkIPv6{RA: &api.RA{DHCPv6: &api.DHCPv6{PrefixDelegation: true}}}
	spec.LAN.IPv6 = &api.LANIPv6{FromUplink: "isp2", Subnet: subnet}
	return spec
}

// tunnelSpec has a tunnel sixpe over isp1 asking for a prefix, and the
// LAN's IPv6 from it.
func tunnelSpec(subnet int) *api.RouterSpec {
	spec := twoUplinks()
	spec.Tunnels = []api.Tunnel{{Name: "sixpe", Interface: "ppp6", L2TP: &api.L2TP{Server: "192.0.2.10", Via: "isp1",
		PPP: &api.PPP{Username: "u"}, IPv6: &api.TunnelIPv6{DHCPv6: &api.DHCPv6{PrefixDelegation: true}}}}}
	spec.LAN.IPv6 = &api.LANIPv6{FromTunnel: "sixpe", Subnet: subnet}
	return spec
}

// delegated is what a dhcp6 session publishes: prefix for what, asked on
// link.
func delegated(owner, what, link, prefix string) facts.Set {
	return facts.Set{Slots: map[string]facts.Slot{owner: {Facts: []facts.Fact{{
		Prefix:  &facts.Prefix{For: what, Prefix: netip.MustParsePrefix(prefix), Link: link},
		Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}}}}
}

func sessionOf(d reconcile.Desired, kind, name string) (session.Spec, bool) {
	for _, s := range d.Sessions {
		if s.Kind == kind && s.Name == name {
			return s, true
		}
	}
	return session.Spec{}, false
}

// A prefix delegated over an uplink gives the LAN <the subnet-th /64>::1,
// its connected route, an unreachable route for the whole delegated
// prefix and a rule to the uplink's table for what comes from it; the
// uplink runs the DHCPv6 client, whose DUID is its own MAC.
func TestCompileDelegatedPrefixFromUplink(t *testing.T) {
	d, err := Router(pdSpec(1), delegated("dhcp6/isp2", "uplink/isp2", "wan2", "2001:db8:d200::/56"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{
		"address[lan0 2001:db8:d200:1::1/64]",
		"route[main 2001:db8:d200:1::/64 metric 256] dev=lan0",
		"route[main 2001:db8:d200::/56 metric 1024] type=unreachable dev=lo",
		"rule[inet6 pref 7150 from 2001:db8:d200::/56] lookup=7102",
	}, []string{"2001:db8:d200::1/64"})
	s, ok := sessionOf(d, dhcp6.Kind, "isp2")
	if want := (dhcp6.Config{For: "uplink/isp2", Interface: "wan2", DUIDLink: "wan2"}); !ok || s.Config != want || s.Wait != "" {
		t.Errorf("session %+v, want %+v running", s, want)
	}
	for _, n := range d.Notes {
		if strings.HasPrefix(n.Section, "lan.ipv6") || strings.Contains(n.Section, "dhcpv6") {
			t.Errorf("note %s", n)
		}
	}

	// Another prefix (the server changed it, or the old one expired and
	// a new one came): the old address and routes are no longer wanted.
	d, err = Router(pdSpec(1), delegated("dhcp6/isp2", "uplink/isp2", "wan2", "2001:db8:d200:300::/56"))
	if err != nil {
		t.Fatal(err)
	}
	got = strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{"address[lan0 2001:db8:d200:301::1/64]", "rule[inet6 pref 7150 from 2001:db8:d200:300::/56] lookup=7102"},
		[]string{"2001:db8:d200:1::", "2001:db8:d200::/56"})
}

// Without the fact, the LAN waits for it (a waiting note) and nothing of
// the prefix is wanted; a fact from another link (the uplink moved) is
// not this uplink's.
func TestCompileDelegatedPrefixWaits(t *testing.T) {
	for name, f := range map[string]facts.Set{
		"no fact":          {},
		"another link":     delegated("dhcp6/isp2", "uplink/isp2", "wan9", "2001:db8:d200::/56"),
		"another uplink's": delegated("dhcp6/isp1", "uplink/isp1", "wan1", "2001:db8:d200::/56"),
	} {
		d, err := Router(pdSpec(1), f)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(addresses(d.Resources), "\n")
		wantInAndNot(t, got, nil, []string{"2001:db8:d200", "7150"})
		if len(d.Notes) != 1 || d.Notes[0].Section != "lan.ipv6.fromUplink" || !d.Notes[0].Waiting ||
			!strings.Contains(d.Notes[0].Message, "waiting for the prefix delegated for uplink/isp2") {
			t.Errorf("%s: notes %v", name, d.Notes)
		}
	}
}

// A subnet the delegated prefix does not hold is a note in status, not an
// error: the spec cannot know the delegated length.
func TestCompileSubnetDoesNotFit(t *testing.T) {
	for _, c := range []struct {
		prefix string
		subnet int
		want   string
	}{
		{"2001:db8:d200::/64", 1, "a /64 holds subnet 0 only"},
		{"2001:db8:d200::/60", 16, "a /60 holds subnets 0 to 15"},
		{"2001:db8:d200::/48", 65536, "a /48 holds subnets 0 to 65535"},
		{"2001:db8:d200::/72", 0, "a /72 holds no /64"},
	} {
		d, err := Router(pdSpec(c.subnet), delegated("dhcp6/isp2", "uplink/isp2", "wan2", c.prefix))
		if err != nil {
			t.Fatalf("%s subnet %d: %v", c.prefix, c.subnet, err)
		}
		wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), nil, []string{"2001:db8:d200", "7150"})
		if len(d.Notes) != 1 || d.Notes[0].Section != "lan.ipv6.subnet" || d.Notes[0].Waiting || !strings.Contains(d.Notes[0].Message, c.want) {
			t.Errorf("%s subnet %d: notes %v, want one saying %q", c.prefix, c.subnet, d.Notes, c.want)
		}
	}
	// The last /64 that fits does.
	d, err := Router(pdSpec(15), delegated("dhcp6/isp2", "uplink/isp2", "wan2", "2001:db8:d200::/60"))
	if err != nil {
		t.Fatal(err)
	}
	wantInAndNot(t, strings.Join(addresses(d.Resources), "\n"), []string{"address[lan0 2001:db8:d200:f::1/64]"}, nil)
}

// A tunnel's client runs on its TUN link once that is up, with the via
// uplink's MAC as its DUID; the prefix delegated over it is routed by the
// tunnel's table.
func TestCompileDelegatedPrefixFromTunnel(t *testing.T) {
	f := delegated("dhcp6/sixpe", "tunnel/sixpe", "ppp6", "2001:db8:e000:4200::/56")
	d, err := Router(tunnelSpec(2), f)
	if err != nil {
		t.Fatal(err)
	}
	table, _ := TunnelTable(0)
	got := strings.Join(addresses(d.Resources), "\n")
	wantInAndNot(t, got, []string{
		"address[lan0 2001:db8:e000:4202::1/64]",
		"route[main 2001:db8:e000:4200::/56 metric 1024] type=unreachable dev=lo",
		"rule[inet6 pref 7150 from 2001:db8:e000:4200::/56] lookup=7191",
	}, nil)
	if table != 7191 {
		t.Errorf("the first tunnel's table is %d", table)
	}
	s, ok := sessionOf(d, dhcp6.Kind, "sixpe")
	want := dhcp6.Config{For: "tunnel/sixpe", Interface: "ppp6", DUIDLink: "wan1"}
	if !ok || s.Config != want || !strings.Contains(s.Wait, "link ppp6 up") {
		t.Errorf("without its link: session %+v, want %+v waiting for ppp6", s, want)
	}
	// The TUN link up: the client runs.
	f.Slots["kernel/links"] = facts.Slot{Facts: []facts.Fact{{Interface: &facts.Interface{Name: "ppp6", Present: true, Index: 9, Carrier: true}, Process: true}}}
	if d, err = Router(tunnelSpec(2), f); err != nil {
		t.Fatal(err)
	}
	if s, ok := sessionOf(d, dhcp6.Kind, "sixpe"); !ok || s.Wait != "" {
		t.Errorf("with its link up: session %+v", s)
	}
	// Down: it waits again.
	f.Slots["kernel/links"] = facts.Slot{Facts: []facts.Fact{{Interface: &facts.Interface{Name: "ppp6", Present: true, Index: 9}, Process: true}}}
	if d, err = Router(tunnelSpec(2), f); err != nil {
		t.Fatal(err)
	}
	if s, ok := sessionOf(d, dhcp6.Kind, "sixpe"); !ok || s.Wait == "" {
		t.Errorf("with its link down: session %+v", s)
	}
}

// An uplink whose link is missing: its client waits for the link.
func TestCompileDHCPv6WaitsForTheUplinksLink(t *testing.T) {
	f := facts.Set{Slots: map[string]facts.Slot{"kernel/links": {Facts: []facts.Fact{{Interface: &facts.Interface{Name: "wan2"}, Process: true}}}}}
	d, err := Router(pdSpec(0), f)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := sessionOf(d, dhcp6.Kind, "isp2"); !ok || s.Wait != "link wan2" {
		t.Errorf("session %+v, want waiting for link wan2", s)
	}
}

// Tunnels take braid's reserved tables after the proxy's, 7191 to 7199.
func TestTunnelTable(t *testing.T) {
	for i, want := range map[int]int{0: 7191, 1: 7192, 8: 7199, 9: 0, -1: 0} {
		got, ok := TunnelTable(i)
		if got != want || ok != (want != 0) {
			t.Errorf("TunnelTable(%d) = %d, %v; want %d", i, got, ok, want)
		}
	}
}
