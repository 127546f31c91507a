package compile

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/advertise"
)

var (
	sixpeDelegated = netip.MustParsePrefix("2001:db8:e000:1200::/56")
	sixpeDNS       = netip.MustParseAddr("2001:db8:e000::53")
	sixpeValid     = time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	sixpePreferred = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
)

// advertiseSpec is twoUplinks with router advertisements on the LAN,
// whose IPv6 comes from lan.addresses (a global /64 and a ULA /64; a /48
// and a link-local address SLAAC cannot use), and, with tunnel set, a /64
// of the prefix delegated over the 6PE tunnel sixpe, which leaves by
// isp2 (MTU 1492). isp1 has an IPv6 gateway unless v6Uplink is unset.
func advertiseSpec(tunnel, v6Uplink bool) *api.RouterSpec {
	spec := twoUplinks()
	spec.LAN.Addresses = append(spec.LAN.Addresses, "fd00:50::1/64", "2001:db8:51::1/48", "fe80::1/64")
	spec.LAN.IPv6 = &api.LANIPv6{Advertise: true}
	if !v6Uplink {
		spec.Uplinks[0].IPv6 = nil
	}
	if tunnel {
		spec.LAN.IPv6.FromTunnel, spec.LAN.IPv6.Subnet = "sixpe", 1
		spec.Tunnels = []api.Tunnel{{Name: "sixpe", Interface: "sixpe", L2TP: &api.L2TP{Server: "192.0.2.10", Via: "isp2",
			PPP:  &api.PPP{Username: "dhcp/{ipv4}@{mac}", Password: &api.Secret{Value: "x"}},
			IPv6: &api.TunnelIPv6{DHCPv6: &api.DHCPv6{PrefixDelegation: true}}}}}
	}
	return spec
}

// sixpeFacts is what the 6PE sessions publish and the daemon observes:
// with up, the tunnel's TUN link there with carrier; with prefix, the
// delegated /56 on it, its lifetimes and resolver.
func sixpeFacts(up, prefix bool) facts.Set {
	s := facts.Set{Slots: map[string]facts.Slot{}}
	links := []facts.Fact{{Interface: &facts.Interface{Name: "lan0", Present: true, Carrier: true}, Process: true}}
	if up {
		// The TUN link is there, and the tunnel's session published it
		// (IPV6CP up).
		links = append(links, facts.Fact{Interface: &facts.Interface{Name: "sixpe", Present: true, Carrier: true}, Process: true})
		s.Slots["l2tp/sixpe"] = facts.Slot{Facts: []facts.Fact{{Link: &facts.Link{For: "tunnel/sixpe", Name: "sixpe"}, Process: true}}}
	}
	s.Slots["kernel/links"] = facts.Slot{Facts: links}
	if prefix {
		s.Slots["dhcp6/sixpe"] = facts.Slot{Facts: []facts.Fact{{Prefix: &facts.Prefix{For: "tunnel/sixpe", Prefix: sixpeDelegated,
			Link: "sixpe", Preferred: sixpePreferred, DNS: []netip.Addr{sixpeDNS}}, Expires: sixpeValid}}}
	}
	return s
}

// advertiseConfig returns the configuration of session[advertise/lan],
// or false when there is none.
func advertiseConfig(t *testing.T, spec *api.RouterSpec, f facts.Set) (advertise.Config, string, bool) {
	t.Helper()
	d, err := Router(spec, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Sessions {
		if s.Kind == advertise.Kind {
			if s.Name != advertise.Name || s.Address() != "session[advertise/lan]" {
				t.Errorf("session %s", s.Address())
			}
			return s.Config.(advertise.Config), s.Wait, true
		}
	}
	return advertise.Config{}, "", false
}

var (
	static50 = advertise.Prefix{Prefix: netip.MustParsePrefix("2001:db8:50::/64"), From: "lan.addresses"}
	ula50    = advertise.Prefix{Prefix: netip.MustParsePrefix("fd00:50::/64"), From: "lan.addresses"}
	sixpe1   = advertise.Prefix{Prefix: netip.MustParsePrefix("2001:db8:e000:1201::/64"), From: "tunnel/sixpe",
		ValidUntil: sixpeValid, PreferredUntil: sixpePreferred}
)

// lan.ipv6.advertise compiles to session[advertise/lan]: the /64s of
// lan.addresses and subnet 1 of the delegated prefix while the tunnel is
// up, with the delegation's lifetimes; the box's addresses as resolvers
// when braid's DNS listens on the LAN, else the delegated resolvers; the
// tunnel's MTU (isp2's 1492 less 42: IPv4, UDP, sequenced L2TP, PPP); the box as default router
// while it has an IPv6 way out.
func TestCompileAdvertise(t *testing.T) {
	listenLAN := func(s *api.RouterSpec) *api.RouterSpec {
		s.DNS = &api.DNS{Listen: []string{"lan"}}
		return s
	}
	listenOne := func(s *api.RouterSpec) *api.RouterSpec {
		s.DNS = &api.DNS{Listen: []string{"192.168.50.1", "fd00:50::1", "2001:db8:99::1"}}
		return s
	}
	box := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	tests := []struct {
		name  string
		spec  *api.RouterSpec
		facts facts.Set
		want  advertise.Config
	}{
		{"static /64s, an IPv6 uplink", advertiseSpec(false, true), facts.Set{},
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50}, DefaultRouter: true}},
		{"static /64s, no IPv6 uplink: not a default router", advertiseSpec(false, false), facts.Set{},
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50}}},
		{"braid's DNS on the LAN: the box's address in each /64", listenLAN(advertiseSpec(false, true)), facts.Set{},
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50}, DNS: box("2001:db8:50::1", "fd00:50::1"), DefaultRouter: true}},
		{"braid's DNS on one LAN address", listenOne(advertiseSpec(false, true)), facts.Set{},
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50}, DNS: box("fd00:50::1"), DefaultRouter: true}},
		{"the tunnel up with its prefix", advertiseSpec(true, false), sixpeFacts(true, true),
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50, sixpe1}, DNS: []netip.Addr{sixpeDNS}, MTU: 1450, DefaultRouter: true}},
		{"the tunnel up, braid's DNS on the LAN", listenLAN(advertiseSpec(true, false)), sixpeFacts(true, true),
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50, sixpe1},
				DNS: box("2001:db8:50::1", "fd00:50::1", "2001:db8:e000:1201::1"), MTU: 1450, DefaultRouter: true}},
		{"the tunnel down: its prefix leaves, no default router", advertiseSpec(true, false), sixpeFacts(false, true),
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50}, MTU: 1450}},
		{"the tunnel up, no prefix yet", advertiseSpec(true, false), sixpeFacts(true, false),
			advertise.Config{Interface: "lan0", Prefixes: []advertise.Prefix{static50, ula50}, MTU: 1450}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wait, ok := advertiseConfig(t, tt.spec, tt.facts)
			if !ok || wait != "" {
				t.Fatalf("session[advertise/lan]: %v, waiting %q", ok, wait)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config\n%+v\nwant\n%+v", got, tt.want)
			}
			if err := got.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// From an uplink's delegation: no tunnel to be up; the LAN's MTU when the
// spec sets it.
func TestCompileAdvertiseFromUplink(t *testing.T) {
	spec := advertiseSpec(false, true)
	spec.LAN.MTU = 1500
	spec.LAN.IPv6.FromUplink, spec.LAN.IPv6.Subnet = "isp1", 255
	f := facts.Set{Slots: map[string]facts.Slot{"dhcp6/isp1": {Facts: []facts.Fact{{Prefix: &facts.Prefix{For: "uplink/isp1", Prefix: sixpeDelegated, Link: "wan1"}}}}}}
	got, _, ok := advertiseConfig(t, spec, f)
	want := advertise.Config{Interface: "lan0", MTU: 1500, DefaultRouter: true, Prefixes: []advertise.Prefix{static50, ula50,
		{Prefix: netip.MustParsePrefix("2001:db8:e000:12ff::/64"), From: "uplink/isp1"}}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("config\n%+v\nwant\n%+v", got, want)
	}
	// A prefix asked on another link is not the uplink's any more.
	f.Slots["dhcp6/isp1"].Facts[0].Prefix.Link = "wan9"
	got, _, _ = advertiseConfig(t, spec, f)
	if len(got.Prefixes) != 2 {
		t.Errorf("a prefix asked on wan9 for an uplink on wan1 is advertised: %+v", got.Prefixes)
	}
}

// A subnet the delegation does not have is noted, and its /64 not
// advertised; the rest is.
func TestCompileAdvertiseSubnetDoesNotFit(t *testing.T) {
	spec := advertiseSpec(true, false)
	spec.LAN.IPv6.Subnet = 256
	d, err := Router(spec, sixpeFacts(true, true))
	if err != nil {
		t.Fatal(err)
	}
	var note string
	for _, n := range d.Notes {
		if n.Section == "lan.ipv6.subnet" {
			note = n.Message
		}
	}
	if want := "subnet 256 does not fit the prefix 2001:db8:e000:1200::/56"; !strings.Contains(note, want) {
		t.Errorf("note %q, want %q", note, want)
	}
	got, _, _ := advertiseConfig(t, spec, sixpeFacts(true, true))
	if len(got.Prefixes) != 2 || got.DefaultRouter {
		t.Errorf("config %+v, want the static /64s only, not a default router", got)
	}
}

// No advertise, no session; a LAN link that is missing makes it wait.
func TestCompileAdvertiseOffOrWaiting(t *testing.T) {
	spec := advertiseSpec(false, true)
	spec.LAN.IPv6.Advertise = false
	if _, _, ok := advertiseConfig(t, spec, facts.Set{}); ok {
		t.Error("a session without advertise")
	}
	spec.LAN.IPv6.Advertise = true
	f := facts.Set{Slots: map[string]facts.Slot{"links": {Facts: []facts.Fact{{Interface: &facts.Interface{Name: "lan0"}, Process: true}}}}}
	if _, wait, ok := advertiseConfig(t, spec, f); !ok || wait != "link lan0" {
		t.Errorf("with lan0 missing: %v, waiting %q", ok, wait)
	}
}

// A new prefix is a change of configuration the supervisor hands the
// running session (an update in place), not a new session.
func TestCompileAdvertiseNewPrefixIsAnUpdate(t *testing.T) {
	spec := advertiseSpec(true, false)
	before, _, _ := advertiseConfig(t, spec, sixpeFacts(true, false))
	after, _, _ := advertiseConfig(t, spec, sixpeFacts(true, true))
	b := session.Spec{Kind: advertise.Kind, Name: advertise.Name, Config: before}
	a := session.Spec{Kind: advertise.Kind, Name: advertise.Name, Config: after}
	if b.Address() != a.Address() || reflect.DeepEqual(b.Fields(), a.Fields()) {
		t.Errorf("before %v\nafter %v: want the same session, other fields", b.Fields(), a.Fields())
	}
	if !strings.Contains(fieldValue(a, "prefixes"), "2001:db8:e000:1201::/64 (from tunnel/sixpe, valid until 2026-12-06T20:00:00Z, preferred until 2026-12-06T08:00:00Z)") {
		t.Errorf("fields %v", a.Fields())
	}
}

func fieldValue(s session.Spec, name string) string {
	for _, f := range s.Fields() {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func TestDelegatedLANAddress(t *testing.T) {
	got, err := DelegatedLANAddress(sixpeDelegated, 1)
	if want := netip.MustParsePrefix("2001:db8:e000:1201::1/64"); err != nil || got != want {
		t.Errorf("DelegatedLANAddress = %s, %v; want %s", got, err, want)
	}
	if _, err := DelegatedLANAddress(netip.MustParsePrefix("2001:db8:e000:1201::/64"), 1); err == nil {
		t.Error("subnet 1 of a /64")
	}
}

func TestTunnelMTU(t *testing.T) {
	spec := advertiseSpec(true, false)
	if got := TunnelMTU(spec, "sixpe"); got != 1450 {
		t.Errorf("over isp2 (MTU 1492): %d, want 1450", got)
	}
	spec.Uplinks[1].MTU = 0
	if got := TunnelMTU(spec, "sixpe"); got != 1458 {
		t.Errorf("over an uplink of 1500: %d, want 1458", got)
	}
	spec.Uplinks[1].MTU = 1300
	if got := TunnelMTU(spec, "sixpe"); got != 1280 {
		t.Errorf("over an uplink of 1300: %d, want IPv6's least, 1280", got)
	}
	if got := TunnelMTU(spec, "other"); got != 0 {
		t.Errorf("no such tunnel: %d", got)
	}
}
