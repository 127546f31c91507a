package compile

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/tunnel"
)

// sixpe is SFR's 6PE tunnel out of uplink via, as the spec's defaults
// leave it.
func sixpe(via string) api.Tunnel {
	return api.Tunnel{Name: "sixpe", Interface: "sixpe", L2TP: &api.L2TP{
		Server: "10.77.1.2", Via: via, Secret: &api.Secret{Value: "6pe"},
		PPP: &api.PPP{Username: "dhcp/{ipv4}@{mac}", Password: &api.Secret{File: "/etc/braid/sfr-ppp.secret"},
			Keepalive: "10s", KeepaliveFailures: 4},
		IPv6: &api.TunnelIPv6{DHCPv6: &api.DHCPv6{PrefixDelegation: true}},
	}}
}

// sixpeSpec is the lab's two uplinks, isp1 on DHCP, with the tunnel
// out of isp1 and the LAN's IPv6 from it.
func sixpeSpec() *api.RouterSpec {
	spec := twoUplinks()
	spec.Uplinks[0].IPv4 = &api.UplinkIPv4{DHCP: &api.DHCPv4{VendorClass: "neufbox_braid"}}
	spec.Tunnels = []api.Tunnel{sixpe("isp1")}
	spec.LAN.IPv6 = &api.LANIPv6{FromTunnel: "sixpe", Subnet: 1}
	return spec
}

var (
	lease1 = facts.Fact{Lease4: &facts.Lease4{Uplink: "isp1", Address: netip.MustParsePrefix("10.101.0.2/24"), Gateway: netip.MustParseAddr("10.101.0.1")}}
	wan1   = facts.Fact{Interface: &facts.Interface{Name: "wan1", Present: true, Index: 3, MAC: "02:00:00:aa:bb:cc", Carrier: true}, Process: true}
	tun    = facts.Fact{Link: &facts.Link{For: "tunnel/sixpe", Name: "sixpe",
		Addresses: []netip.Prefix{netip.MustParsePrefix("fe80::1234/64")}, Peer: netip.MustParseAddr("fe80::1"), MTU: 1460}, Process: true}
	delegatedFact = facts.Fact{Prefix: &facts.Prefix{For: "tunnel/sixpe", Prefix: netip.MustParsePrefix("2001:db8:e000:100::/56"), Link: "sixpe"},
		Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
)

// factsOf puts each fact in the slot of the session that learns it.
func factsOf(fs ...facts.Fact) facts.Set {
	s := facts.Set{Slots: map[string]facts.Slot{}}
	for _, f := range fs {
		owner := map[string]string{"lease4": "dhcp4/isp1", "interface": "kernel/links", "link": "l2tp/sixpe", "prefix": "dhcp6/sixpe"}[f.Kind()]
		sl := s.Slots[owner]
		sl.Facts = append(sl.Facts, f)
		s.Slots[owner] = sl
	}
	return s
}

func tunnelSession(t *testing.T, d []session.Spec) session.Spec {
	t.Helper()
	for _, s := range d {
		if s.Kind == tunnel.Kind && s.Name == "sixpe" {
			return s
		}
	}
	t.Fatalf("no session[l2tp/sixpe] in %v", d)
	return session.Spec{}
}

// The session's configuration comes from the tunnel and its uplink: the
// lease's address and the link's MAC, which make the login; it waits for
// what it lacks, and a new lease or MAC is a new configuration (a
// restart).
func TestCompileTunnelSession(t *testing.T) {
	for _, tt := range []struct {
		name  string
		spec  func(*api.RouterSpec)
		facts facts.Set
		wait  string
		local string
		mac   string
	}{
		{name: "no lease yet", facts: factsOf(wan1), wait: "the DHCP lease of uplink isp1", mac: "02:00:00:aa:bb:cc"},
		{name: "leased", facts: factsOf(wan1, lease1), local: "10.101.0.2", mac: "02:00:00:aa:bb:cc"},
		{name: "the link is missing", facts: factsOf(facts.Fact{Interface: &facts.Interface{Name: "wan1"}}, lease1), wait: "link wan1"},
		{name: "nobody looked at the link: the MAC is not known", facts: factsOf(lease1), local: "10.101.0.2", wait: "the MAC address of link wan1"},
		{name: "no {mac} in the login: no MAC needed", facts: factsOf(lease1), local: "10.101.0.2",
			spec: func(s *api.RouterSpec) { s.Tunnels[0].L2TP.PPP.Username = "dhcp/{ipv4}" }},
		{name: "the spec's MAC wins", facts: factsOf(wan1, lease1), local: "10.101.0.2", mac: "00:24:d4:aa:bb:cc",
			spec: func(s *api.RouterSpec) { s.Uplinks[0].MACAddress = "00:24:d4:aa:bb:cc" }},
		{name: "a static uplink", facts: factsOf(wan1, facts.Fact{Interface: &facts.Interface{Name: "wan2", Present: true, MAC: "02:00:00:dd:ee:ff"}}),
			local: "10.102.0.2", mac: "02:00:00:dd:ee:ff",
			spec: func(s *api.RouterSpec) { s.Tunnels[0].L2TP.Via = "isp2" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := sixpeSpec()
			if tt.spec != nil {
				tt.spec(spec)
			}
			d, err := Router(spec, tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			s := tunnelSession(t, d.Sessions)
			if s.Wait != tt.wait {
				t.Errorf("waits for %q, want %q", s.Wait, tt.wait)
			}
			cfg := s.Config.(tunnel.Config)
			if got := addrString(cfg.Local); got != tt.local {
				t.Errorf("local %q, want %q", got, tt.local)
			}
			if cfg.MAC != tt.mac {
				t.Errorf("mac %q, want %q", cfg.MAC, tt.mac)
			}
		})
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// The login is filled in from the configuration, and a new lease is a
// new configuration: the supervisor restarts the session with the new
// login.
func TestCompileTunnelLogin(t *testing.T) {
	d, err := Router(sixpeSpec(), factsOf(wan1, lease1))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tunnelSession(t, d.Sessions).Config.(tunnel.Config)
	login, err := cfg.Login()
	if err != nil || login != "dhcp/10.101.0.2@020000aabbcc" {
		t.Errorf("login %q, %v; want dhcp/10.101.0.2@020000aabbcc", login, err)
	}
	want := []string{"tunnel=sixpe", "interface=sixpe", "server=10.77.1.2:1701", "via=isp1", "device=wan1", "local=10.101.0.2",
		"mac=02:00:00:aa:bb:cc", "secret=(sensitive)", "username=dhcp/10.101.0.2@020000aabbcc", "password=file:/etc/braid/sfr-ppp.secret",
		"keepalive=10s", "keepaliveFailures=4"}
	var got []string
	for _, f := range cfg.Fields() {
		got = append(got, f.Name+"="+f.Value)
	}
	if !slices.Equal(got, want) {
		t.Errorf("fields\n got %q\nwant %q", got, want)
	}
	other := lease1
	other.Lease4 = &facts.Lease4{Uplink: "isp1", Address: netip.MustParsePrefix("10.101.0.3/24"), Gateway: netip.MustParseAddr("10.101.0.1")}
	d2, err := Router(sixpeSpec(), factsOf(wan1, other))
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := tunnelSession(t, d2.Sessions).Config.(tunnel.Config)
	if reflect.DeepEqual(cfg, cfg2) {
		t.Error("a new lease leaves the configuration as it was")
	}
	if l, _ := cfg2.Login(); l != "dhcp/10.101.0.3@020000aabbcc" {
		t.Errorf("login after the new lease %q", l)
	}
}

// The tunnel's table holds an unreachable default always, the TUN link's
// default above it while the link is there; the delegated prefix's rule
// comes with the prefix; the firewall treats the TUN link as an uplink
// (without NAT) and accepts the LNS's L2TP on the via uplink.
func TestCompileTunnelRouting(t *testing.T) {
	unreachable := "route[7191 ::/0 metric 4096] type=unreachable dev=lo"
	viaTun := "route[7191 ::/0 metric 1024] dev=sixpe"
	rule := "rule[inet6 pref 7040 from 2001:db8:e000:100::/56] lookup=7191"
	mss := []string{
		`nft.rule[inet braid forward:mss-tunnel-sixpe-out] rule=oifname "sixpe" tcp flags syn tcp option maxseg size set 1400`,
		`nft.rule[inet braid forward:mss-tunnel-sixpe-in] rule=iifname "sixpe" tcp flags syn tcp option maxseg size set 1400`,
	}
	fw := []string{
		`nft.rule[inet braid input:dhcpv6-tunnel-sixpe] rule=iifname "sixpe" ip6 saddr fe80::/10 udp dport 546 accept`,
		`nft.rule[inet braid input:l2tp-sixpe] rule=iifname "wan1" ip saddr 10.77.1.2 udp dport 1701 accept`,
		`nft.rule[inet braid input:drop-tunnel-sixpe] rule=iifname "sixpe" counter drop`,
		`nft.rule[inet braid forward:lan-tunnel-sixpe] rule=iifname "lan0" oifname "sixpe" accept`,
		`nft.rule[inet braid forward:drop-tunnel-sixpe] rule=iifname "sixpe" counter drop`,
	}
	for _, tt := range []struct {
		name        string
		facts       facts.Set
		want, avoid []string
	}{
		{name: "nothing learnt yet", facts: factsOf(wan1), want: append([]string{unreachable}, fw...), avoid: append([]string{viaTun, rule}, mss...)},
		{name: "the prefix from before a restart, no link yet", facts: factsOf(wan1, lease1, delegatedFact),
			want: append([]string{unreachable, rule}, fw...), avoid: append([]string{viaTun}, mss...)},
		{name: "up, with its prefix", facts: factsOf(wan1, lease1, tun, delegatedFact), want: append(append([]string{unreachable, viaTun, rule}, fw...), mss...)},
		{name: "a link of another name is not the tunnel's", facts: factsOf(wan1, lease1, facts.Fact{Link: &facts.Link{For: "tunnel/sixpe", Name: "other"}}),
			want: []string{unreachable}, avoid: []string{viaTun, "dev=other"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Router(sixpeSpec(), tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(addresses(d.Resources), "\n")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("no %s in\n%s", w, got)
				}
			}
			for _, a := range tt.avoid {
				if strings.Contains(got, a) {
					t.Errorf("%s in\n%s", a, got)
				}
			}
			// A SYN-ACK is established: the clamp comes before.
			if i, j := strings.Index(got, "forward:mss-tunnel-sixpe-in"), strings.Index(got, "forward:established"); i >= 0 && i > j {
				t.Errorf("the MSS clamp comes after the established accept:\n%s", got)
			}
			// IPv6 is never NATed, and nothing IPv4 is about the tunnel.
			for _, line := range addresses(d.Resources) {
				if strings.Contains(line, "sixpe") && (strings.Contains(line, "masquerade") || strings.Contains(line, "dhcpv4") || strings.Contains(line, " ip saddr 192.168")) {
					t.Errorf("IPv4 or NAT on the tunnel: %s", line)
				}
			}
		})
	}
}

// A host name as server is resolved by the session: the firewall accepts
// L2TP from any address on the via uplink. A port in the server is kept.
func TestCompileTunnelServerName(t *testing.T) {
	spec := sixpeSpec()
	spec.Tunnels[0].L2TP.Server = "lns.example.net:1702"
	d, err := Router(spec, factsOf(wan1, lease1))
	if err != nil {
		t.Fatal(err)
	}
	if got := tunnelSession(t, d.Sessions).Config.(tunnel.Config).Server; got != "lns.example.net:1702" {
		t.Errorf("server %q", got)
	}
	want := `nft.rule[inet braid input:l2tp-sixpe] rule=iifname "wan1" udp dport 1701 accept`
	if !slices.Contains(addresses(d.Resources), want) {
		t.Errorf("no %s in\n%s", want, strings.Join(addresses(d.Resources), "\n"))
	}
}

// IPv6 port forwards and open ports reach the LAN and the box through the
// tunnel too; IPv4 ones do not.
func TestCompileTunnelForwards(t *testing.T) {
	spec := sixpeSpec()
	spec.Firewall = &api.Firewall{Forward: []api.PortForward{{Port: 8080, Proto: "tcp", To: "192.168.50.10:8080"}, {Port: 443, Proto: "tcp", To: "[2001:db8:50::10]:443"}}}
	d, err := Router(spec, factsOf(wan1, lease1))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addresses(d.Resources), "\n")
	if !strings.Contains(got, "nft.rule[inet braid forward:forward-tcp-443-tunnel-sixpe]") {
		t.Errorf("no IPv6 forward through the tunnel in\n%s", got)
	}
	if strings.Contains(got, "forward-tcp-8080-tunnel-sixpe") {
		t.Errorf("an IPv4 forward through the tunnel in\n%s", got)
	}
}

// braid's own tables hold nine tunnels: a tenth is an error, not a
// table of someone else's.
func TestCompileTooManyTunnels(t *testing.T) {
	spec := sixpeSpec()
	spec.LAN.IPv6 = nil
	for i := 1; i < 10; i++ {
		tn := sixpe("isp1")
		tn.Name = fmt.Sprintf("t%d", i)
		tn.Interface = tn.Name
		spec.Tunnels = append(spec.Tunnels, tn)
	}
	if _, err := Router(spec, factsOf(wan1, lease1)); err == nil || !strings.Contains(err.Error(), "tunnel tables") {
		t.Errorf("ten tunnels: %v", err)
	}
	spec.Tunnels = spec.Tunnels[:9]
	d, err := Router(spec, factsOf(wan1, lease1))
	if err != nil {
		t.Fatalf("nine tunnels: %v", err)
	}
	if !slices.Contains(addresses(d.Resources), "route[7199 ::/0 metric 4096] type=unreachable dev=lo") {
		t.Error("the ninth tunnel has no table 7199")
	}
}

// The LAN's adverts carry the tunnel link's MTU as its session set it
// (here the LNS's smaller MRU), once the link is up; the spec's estimate
// before.
func TestCompileAdvertisedTunnelMTU(t *testing.T) {
	spec := sixpeSpec()
	spec.LAN.IPv6.Advertise = true
	lan := facts.Fact{Interface: &facts.Interface{Name: "lan0", Present: true, Carrier: true}, Process: true}
	small := tun
	small.Link = &facts.Link{For: "tunnel/sixpe", Name: "sixpe", MTU: 1400}
	cfg, _, ok := advertiseConfig(t, spec, factsOf(lan, wan1, lease1, small, delegatedFact))
	if !ok || cfg.MTU != 1400 {
		t.Errorf("with the link up at MTU 1400: advertised MTU %d", cfg.MTU)
	}
	cfg, _, ok = advertiseConfig(t, spec, factsOf(lan, wan1, lease1, delegatedFact))
	if !ok || cfg.MTU != TunnelMTU(spec, "sixpe") {
		t.Errorf("before the link: advertised MTU %d, want the estimate %d", cfg.MTU, TunnelMTU(spec, "sixpe"))
	}
}
