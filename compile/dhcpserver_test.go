package compile

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/sessions/dhcpserver"
	"github.com/braid-router/braid/sessions/dhcpserver/leases"
)

// dhcpServerConfig returns the configuration of session[dhcpserver/lan]
// and what it waits for, or false when there is none.
func dhcpServerConfig(t *testing.T, spec *api.RouterSpec, f facts.Set) (dhcpserver.Config, string, bool) {
	t.Helper()
	d, err := Router(spec, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Sessions {
		if s.Kind == dhcpserver.Kind {
			if s.Address() != "session[dhcpserver/lan]" {
				t.Errorf("session %s", s.Address())
			}
			return s.Config.(dhcpserver.Config), s.Wait, true
		}
	}
	return dhcpserver.Config{}, "", false
}

func TestCompileDHCPServer(t *testing.T) {
	ip := netip.MustParseAddr
	lanUp := facts.Fact{Interface: &facts.Interface{Name: "lan0", Present: true, Carrier: true}, Process: true}
	lanGone := facts.Fact{Interface: &facts.Interface{Name: "lan0"}, Process: true}
	lease := facts.Fact{Lease4: &facts.Lease4{Uplink: "isp1", Address: netip.MustParsePrefix("10.101.0.2/24"),
		Gateway: ip("10.101.0.1"), DNS: []netip.Addr{ip("10.101.0.53")}}}
	slaac := facts.Fact{SLAAC: &facts.SLAAC{Uplink: "isp2", Link: "wan2", Address: netip.MustParsePrefix("2001:db8:102::7/64"),
		DNS: []facts.RDNSS{{Addr: ip("2001:db8:102::53")}}}}
	spec := func(listen ...string) *api.RouterSpec {
		s := twoUplinks()
		s.LAN.Addresses = append([]string{"10.9.0.1/16"}, s.LAN.Addresses...)
		s.LAN.DHCP = &api.LANDHCP{Range: []string{"192.168.50.100", "192.168.50.200"}, LeaseTime: "1h",
			Static: []api.StaticLease{{MAC: "02:00:00:00:00:05", Address: "192.168.50.10", Hostname: "nas"}}}
		s.Uplinks[0].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{}}
		s.Uplinks[1].IPv6 = &api.UplinkIPv6{RA: &api.RA{}}
		if listen != nil {
			s.DNS = &api.DNS{Listen: listen}
		}
		return s
	}
	base := dhcpserver.Config{Interface: "lan0", Server: ip("192.168.50.1"), Subnet: netip.MustParsePrefix("192.168.50.0/24"),
		First: ip("192.168.50.100"), Last: ip("192.168.50.200"), LeaseTime: time.Hour,
		Static: []leases.Static{{MAC: "02:00:00:00:00:05", Addr: ip("192.168.50.10"), Hostname: "nas"}},
		Router: ip("192.168.50.1")}
	withDNS := func(dns ...string) dhcpserver.Config {
		c := base
		for _, d := range dns {
			c.DNS = append(c.DNS, ip(d))
		}
		return c
	}
	for _, tt := range []struct {
		name     string
		spec     *api.RouterSpec
		facts    []facts.Fact
		want     dhcpserver.Config
		wantWait string
	}{
		{"braid's resolver on lan: the box", spec("lan"), []facts.Fact{lanUp, lease}, withDNS("192.168.50.1"), ""},
		{"braid's resolver on a LAN address", spec("127.0.0.1", "10.9.0.1"), []facts.Fact{lanUp, lease}, withDNS("10.9.0.1"), ""},
		{"not on the LAN: the uplinks' IPv4 resolvers", spec("127.0.0.1"), []facts.Fact{lanUp, lease, slaac}, withDNS("10.101.0.53"), ""},
		{"no dns section, nothing learnt: no option 6", spec(), []facts.Fact{lanUp}, withDNS(), ""},
		{"the LAN's link missing: wait", spec("lan"), []facts.Fact{lanGone}, withDNS("192.168.50.1"), "link lan0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set := facts.Set{Slots: map[string]facts.Slot{}}
			for i, f := range tt.facts {
				set.Slots[string(rune('a'+i))] = facts.Slot{Facts: []facts.Fact{f}}
			}
			got, wait, ok := dhcpServerConfig(t, tt.spec, set)
			if !ok {
				t.Fatal("no session[dhcpserver/lan]")
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config\n got %+v\nwant %+v", got, tt.want)
			}
			if wait != tt.wantWait {
				t.Errorf("wait %q, want %q", wait, tt.wantWait)
			}
		})
	}
	if _, _, ok := dhcpServerConfig(t, twoUplinks(), facts.Set{}); ok {
		t.Error("a session[dhcpserver/lan] without lan.dhcp")
	}
}
