package compile

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/resolve"
)

func TestResolversFollowLeasesAdvertsAndHealth(t *testing.T) {
	spec := func() *api.RouterSpec {
		s := twoUplinks()
		s.Uplinks[0].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{}}
		s.Uplinks[1].Priority = 5 // isp2 is preferred
		return s
	}
	lease := facts.Fact{Lease4: &facts.Lease4{Uplink: "isp1", Address: netip.MustParsePrefix("10.101.0.2/24"),
		Gateway: netip.MustParseAddr("10.101.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.101.0.1"), netip.MustParseAddr("10.101.0.53")}}}
	slaac := facts.Fact{SLAAC: &facts.SLAAC{Uplink: "isp2", Link: "wan2", Address: netip.MustParsePrefix("2001:db8:102::7/64"),
		DNS: []facts.RDNSS{{Addr: netip.MustParseAddr("2001:db8:102::53")}}}}
	verdict := func(uplink string, ok bool) facts.Fact {
		return facts.Fact{Health: &facts.Health{Uplink: uplink, Healthy: ok}, Process: true}
	}
	for _, tt := range []struct {
		name  string
		facts []facts.Fact
		want  string
	}{
		{"nothing learnt: the system's configuration", nil, ""},
		{"a lease's resolvers, by its uplink", []facts.Fact{lease}, "10.101.0.1:53 (uplink isp1), 10.101.0.53:53 (uplink isp1)"},
		{"by priority: isp2's adverts first", []facts.Fact{lease, slaac}, "[2001:db8:102::53]:53 (uplink isp2), 10.101.0.1:53 (uplink isp1), 10.101.0.53:53 (uplink isp1)"},
		{"an unhealthy uplink's are left out", []facts.Fact{lease, slaac, verdict("isp2", false)}, "10.101.0.1:53 (uplink isp1), 10.101.0.53:53 (uplink isp1)"},
		{"all unhealthy: all of them rather than none", []facts.Fact{lease, slaac, verdict("isp2", false), verdict("isp1", false)},
			"[2001:db8:102::53]:53 (uplink isp2), 10.101.0.1:53 (uplink isp1), 10.101.0.53:53 (uplink isp1)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set := facts.Set{Slots: map[string]facts.Slot{}}
			for i, f := range tt.facts {
				set.Slots[string(rune('a'+i))] = facts.Slot{Facts: []facts.Fact{f}}
			}
			d, err := Router(spec(), set)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range d.Resolvers {
				got = append(got, s.String())
				if want := map[string]string{"isp1": "wan1", "isp2": "wan2"}[s.Uplink]; s.Link != want {
					t.Errorf("%s leaves by %q, want %q", s, s.Link, want)
				}
			}
			if g := strings.Join(got, ", "); g != tt.want {
				t.Errorf("resolvers\n got %s\nwant %s", g, tt.want)
			}
		})
	}
	// An uplink whose link is missing has none.
	set := facts.Set{Slots: map[string]facts.Slot{"l": {Facts: []facts.Fact{lease}},
		"kernel/links": {Facts: []facts.Fact{{Interface: &facts.Interface{Name: "wan1"}, Process: true}, {Interface: &facts.Interface{Name: "wan2", Present: true}, Process: true}, {Interface: &facts.Interface{Name: "lan0", Present: true}, Process: true}}}}}
	d, err := Router(spec(), set)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(d.Resolvers, func(s resolve.Server) bool { return s.Uplink == "isp1" }) {
		t.Errorf("a missing link's resolvers: %v", d.Resolvers)
	}
}
