package compile

import (
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/sessions/proxy"
)

// proxied is the lab's shape with routes: both ways, a bypass, and the
// aggregation peer at an IPv4 address.
func proxied() *api.RouterSpec {
	spec := twoUplinks()
	spec.Routes = []api.RouteRule{
		{To: []string{"198.51.100.128/25", "2001:db8:ffff:1::/64"}, Via: "isp1"},
		{From: []string{"192.168.50.50/32"}, Via: "isp2"},
	}
	spec.Aggregation = &api.Aggregation{
		Peer: &api.AggregationPeer{Address: "203.0.113.7:65101", Protocol: "shadowsocks", Cipher: "aes-256-gcm",
			Key: &api.Secret{File: "/etc/braid/peer.key"}},
		TCP: api.TCPProxy, UDP: api.UDPPeer,
		Bypass: []string{"192.168.0.0/16", "10.0.0.0/8", "2001:db8:99::/48"},
	}
	return spec
}

// peerUp is the proxy's verdict that the peer at address is healthy.
func peerUp(address string) facts.Set {
	return facts.Set{Slots: map[string]facts.Slot{"proxy/aggregation": {Facts: []facts.Fact{
		{Peer: &facts.Peer{Address: address, Healthy: true, Uplinks: []string{"isp1"}}, Process: true}}}}}
}

// compileUp compiles spec with its peer proven up.
func compileUp(t *testing.T, spec *api.RouterSpec) reconcile.Desired {
	t.Helper()
	d, err := Router(spec, peerUp(spec.Aggregation.Peer.Address))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// bound lists the process-bound objects of a desired state as the plan
// shows them, with their owner.
func bound(t *testing.T, rs []plan.Resource) []string {
	t.Helper()
	var out []string
	for _, r := range rs {
		if b, ok := r.(plan.ProcessBound); ok {
			owner := b.Owner
			if b.Also != "" {
				owner += "+" + b.Also
			}
			out = append(out, owner+" "+r.Address()+" "+plan.Describe(r))
		}
	}
	return out
}

// TestCompileProxy is the whole of the proxy's steering for a spec with
// every kind of exclusion: the session, and the nftables and netlink
// objects that only the daemon keeps, while that session runs. Nothing
// else changes.
func TestCompileProxy(t *testing.T) {
	d := compileUp(t, proxied())
	const owner = "proxy/aggregation "
	want := []string{
		owner + "route[7190 0.0.0.0/0 metric 0] type=local dev=lo",
		owner + "route[7190 ::/0 metric 1024] type=local dev=lo",
		owner + "rule[inet pref 6900 fwmark 0x1c16] lookup=7190",
		owner + "rule[inet6 pref 6900 fwmark 0x1c16] lookup=7190",
		owner + "nft.set[inet braid proxy_bypass_v4] type=ipv4_addr flags=interval elements=2",
		owner + "nft.set[inet braid proxy_bypass_v6] type=ipv6_addr flags=interval elements=1",
		owner + "nft.set[inet braid proxy_routes_v4] type=ipv4_addr flags=interval elements=1",
		owner + "nft.set[inet braid proxy_routes_v6] type=ipv6_addr flags=interval elements=1",
		owner + "nft.set[inet braid proxy_from_v4] type=ipv4_addr flags=interval elements=1",
		owner + "nft.set[inet braid proxy_lan_v4] type=ipv4_addr flags=interval elements=1",
		owner + "nft.set[inet braid proxy_lan_v6] type=ipv6_addr flags=interval elements=1",
		owner + "nft.chain[inet braid prerouting_tproxy] type=filter hook=prerouting priority=mangle + 1 policy=accept",
		owner + `nft.rule[inet braid prerouting_tproxy:not-lan] rule=iifname != "lan0" return`,
		owner + "nft.rule[inet braid prerouting_tproxy:reply] rule=ct direction reply return",
		owner + "nft.rule[inet braid prerouting_tproxy:marked] rule=meta mark != 0x00000000 return",
		owner + "nft.rule[inet braid prerouting_tproxy:local] rule=fib daddr type local return",
		owner + "nft.rule[inet braid prerouting_tproxy:bypass-v4] rule=ip daddr @proxy_bypass_v4 return",
		owner + "nft.rule[inet braid prerouting_tproxy:bypass-v6] rule=ip6 daddr @proxy_bypass_v6 return",
		owner + "nft.rule[inet braid prerouting_tproxy:routes-v4] rule=ip daddr @proxy_routes_v4 return",
		owner + "nft.rule[inet braid prerouting_tproxy:routes-v6] rule=ip6 daddr @proxy_routes_v6 return",
		owner + "nft.rule[inet braid prerouting_tproxy:from-v4] rule=ip saddr @proxy_from_v4 return",
		owner + "nft.rule[inet braid prerouting_tproxy:lan-v4] rule=ip daddr @proxy_lan_v4 return",
		owner + "nft.rule[inet braid prerouting_tproxy:lan-v6] rule=ip6 daddr @proxy_lan_v6 return",
		owner + "nft.rule[inet braid prerouting_tproxy:peer] rule=ip daddr 203.0.113.7 return",
		owner + `nft.rule[inet braid prerouting_tproxy:tcp-v4] rule=iifname "lan0" meta l4proto tcp tproxy ip to :7190 meta mark set 0x00001c16`,
		owner + `nft.rule[inet braid prerouting_tproxy:tcp-v6] rule=iifname "lan0" meta l4proto tcp tproxy ip6 to :7190 meta mark set 0x00001c16`,
		owner + "nft.rule[inet braid prerouting_tproxy:not-unicast] rule=meta l4proto udp fib daddr type != unicast return",
		owner + `nft.rule[inet braid prerouting_tproxy:udp-v4] rule=iifname "lan0" meta l4proto udp tproxy ip to :7190 meta mark set 0x00001c16`,
		owner + `nft.rule[inet braid prerouting_tproxy:udp-v6] rule=iifname "lan0" meta l4proto udp tproxy ip6 to :7190 meta mark set 0x00001c16`,
	}
	if got := bound(t, d.Resources); !slices.Equal(got, want) {
		t.Errorf("process-bound objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The session, with the key as a reference (resolved by the session).
	if len(d.Sessions) != 1 || d.Sessions[0].Address() != "session[proxy/aggregation]" {
		t.Fatalf("sessions: %v", d.Sessions)
	}
	s := d.Sessions[0]
	if got := plan.Describe(s); got != "port=7190 peer=203.0.113.7:65101 protocol=shadowsocks cipher=aes-256-gcm key=file:/etc/braid/peer.key tcp=proxy udp=peer probe-uplinks=isp1/7101,isp2/7102" {
		t.Errorf("session: %s", got)
	}
	cfg := s.Config.(proxy.Config)
	if sec := cfg.Secrets(); len(sec) != 1 || sec[0].File != "/etc/braid/peer.key" || s.Wait != "" {
		t.Errorf("session secrets %v, wait %q", sec, s.Wait)
	}

	// Without its process-bound objects, the desired state is the spec's
	// without the proxy: steering adds nothing else.
	plain := proxied()
	plain.Aggregation.TCP, plain.Aggregation.UDP = api.TCPDirect, api.UDPDirect
	direct, _ := compileOrWantErr(t, plain, "")
	if got, want := addresses(d.WithoutProcessBound(nil).Resources), addresses(direct.Resources); !slices.Equal(got, want) {
		t.Errorf("the kernel objects differ with the proxy:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(bound(t, direct.Resources)) != 0 || len(direct.Sessions) != 0 {
		t.Errorf("tcp: direct, udp: direct steers: %v, sessions %v", bound(t, direct.Resources), direct.Sessions)
	}
	// The daemon keeps them once the session runs.
	kept := d.WithoutProcessBound(func(b plan.ProcessBound) bool { return b.Owner == "proxy/aggregation" })
	if len(kept.Resources) != len(d.Resources) {
		t.Errorf("with the session running, %d of %d objects kept", len(kept.Resources), len(d.Resources))
	}
}

// The peer is excluded only when it is an address (a name is resolved by
// the proxy, later); tcp defaults to proxy; a spec without aggregation or
// without a LAN has no proxy.
func TestCompileProxyVariants(t *testing.T) {
	ruleOf := func(d []plan.Resource, id string) string {
		for _, l := range bound(t, d) {
			if strings.Contains(l, "prerouting_tproxy:"+id+"]") {
				return l[strings.Index(l, "rule="):]
			}
		}
		return ""
	}
	spec := proxied()
	spec.Aggregation.Peer.Address = "[2001:db8:7::1]:65101"
	d := compileUp(t, spec)
	if got := ruleOf(d.Resources, "peer"); got != "rule=ip6 daddr 2001:db8:7::1 return" {
		t.Errorf("IPv6 peer: %q", got)
	}
	spec.Aggregation.Peer.Address = "[::ffff:203.0.113.7]:65101"
	d = compileUp(t, spec)
	if got := ruleOf(d.Resources, "peer"); got != "rule=ip daddr 203.0.113.7 return" {
		t.Errorf("IPv4-mapped peer: %q", got)
	}
	spec.Aggregation.Peer.Address = "vps.example.net:65101"
	spec.Aggregation.TCP = ""
	spec.Aggregation.Bypass = nil
	spec.Routes = nil
	d = compileUp(t, spec)
	if got := ruleOf(d.Resources, "peer") + ruleOf(d.Resources, "bypass-v4") + ruleOf(d.Resources, "routes-v4"); got != "" {
		t.Errorf("a peer by name, no bypass, no routes: %q", got)
	}
	if ruleOf(d.Resources, "tcp-v4") == "" || len(d.Sessions) != 1 {
		t.Errorf("tcp left to its default is not proxied")
	}
	for _, spec := range []*api.RouterSpec{twoUplinks(), func() *api.RouterSpec { s := proxied(); s.LAN = nil; return s }()} {
		d, _ := compileOrWantErr(t, spec, "")
		if len(bound(t, d.Resources)) != 0 || len(d.Sessions) != 0 {
			t.Errorf("a proxy without aggregation or a LAN")
		}
	}
}

func TestCompileProxyErrors(t *testing.T) {
	spec := proxied()
	spec.Uplinks[1].Table = 7190
	compileOrWantErr(t, spec, "uplinks[isp2].table: table 7190 is braid's transparent proxy table")
	spec = proxied()
	spec.Firewall = &api.Firewall{Open: []api.OpenPort{{Port: 22}, {Port: 7190}}}
	compileOrWantErr(t, spec, "firewall.open[1]: tcp port 7190 is the transparent proxy's listener")
	spec.Firewall.Open[1].Proto = "udp"
	compileOrWantErr(t, spec, "firewall.open[1]: udp port 7190 is the transparent proxy's UDP socket")
	spec.Aggregation.UDP = api.UDPDrop
	compileOrWantErr(t, spec, "")
	spec.Aggregation.TCP = api.TCPDirect
	spec.Firewall.Open[1].Proto = "tcp"
	compileOrWantErr(t, spec, "")
	spec = proxied()
	spec.Aggregation.TCP, spec.Aggregation.UDP = api.TCPDirect, api.UDPDirect
	spec.Uplinks[1].Table = 7190
	compileOrWantErr(t, spec, "")
	spec = proxied()
	spec.Aggregation.Bypass = []string{"10.0.0.0/33"}
	compileOrWantErr(t, spec, "aggregation.bypass")
}

// specs/sfr-6pe.yaml proxies to a peer by name: its steering compiles.
func TestCompileProxyExampleSpec(t *testing.T) {
	doc, err := api.Load("../specs/sfr-6pe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := compileUp(t, doc.Router)
	if got := bound(t, d.Resources); len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "tproxy ip6 to :7190") {
		t.Errorf("sfr-6pe.yaml's steering:\n%s", strings.Join(got, "\n"))
	}
}

// TestCompileProxyPeerHealth: the session always runs, the steering only
// while the proxy's verdict on the spec's peer is healthy; otherwise a
// note says why, and nothing else changes. The session probes over the
// healthy uplinks whose link is there, by priority, each with its
// table's mark, and the end-to-end probe's resolver when peer.dns is set.
func TestCompileProxyPeerHealth(t *testing.T) {
	const addr = "203.0.113.7:65101"
	verdict := func(fs ...facts.Fact) facts.Set {
		return facts.Set{Slots: map[string]facts.Slot{"proxy/aggregation": {Facts: fs}}}
	}
	down := facts.Fact{Peer: &facts.Peer{Address: addr, Reason: "no answer on 3 connections in a row"}, Process: true}
	other := facts.Fact{Peer: &facts.Peer{Address: "203.0.113.8:65101", Healthy: true}, Process: true}
	up := compileUp(t, proxied())
	for _, c := range []struct {
		what string
		f    facts.Set
		note string
	}{
		{"no verdict yet", facts.Set{}, "aggregation: peer not proven up yet: LAN traffic goes direct"},
		{"down", verdict(down), "aggregation: peer down: no answer on 3 connections in a row: LAN traffic goes direct"},
		{"a verdict on another peer", verdict(other), "aggregation: peer not proven up yet: LAN traffic goes direct"},
	} {
		d, err := Router(proxied(), c.f)
		if err != nil {
			t.Fatal(err)
		}
		if got := bound(t, d.Resources); len(got) != 0 {
			t.Errorf("%s: steering:\n%s", c.what, strings.Join(got, "\n"))
		}
		if len(d.Sessions) != 1 || plan.Describe(d.Sessions[0]) != plan.Describe(up.Sessions[0]) {
			t.Errorf("%s: sessions %v, want the proxy's as with the peer up", c.what, d.Sessions)
		}
		var notes []string
		for _, n := range d.Notes {
			notes = append(notes, n.String())
			if n.String() == c.note && !n.Waiting {
				t.Errorf("%s: the note is not a waiting one", c.what)
			}
		}
		if !slices.Contains(notes, c.note) {
			t.Errorf("%s: notes %q, want %q", c.what, notes, c.note)
		}
		if got, want := addresses(d.Resources), addresses(up.WithoutProcessBound(nil).Resources); !slices.Equal(got, want) {
			t.Errorf("%s: the kernel objects differ from the steering's absence:\n%s\nwant:\n%s", c.what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// Probed over: isp2 first by priority, isp1 not while unhealthy, nor
	// an uplink whose link is missing; the resolver when set.
	spec := proxied()
	spec.Uplinks[0].Priority, spec.Uplinks[1].Priority = 20, 10
	spec.Aggregation.Peer.DNS = "198.51.100.53:53"
	lte := spec.Uplinks[1]
	lte.Name, lte.Interface, lte.Table, lte.Priority = "lte", "wwan0", 7103, 5
	spec.Uplinks = append(spec.Uplinks, lte)
	f := peerUp(addr)
	f.Slots["kernel/links"] = facts.Slot{Facts: []facts.Fact{{Interface: &facts.Interface{Name: "wwan0"}, Process: true}}}
	d, err := Router(spec, f)
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.Sessions[0].Config.(proxy.Config)
	if got := plan.Describe(d.Sessions[0]); !strings.HasSuffix(got, " probe-uplinks=isp2/7102,isp1/7101 dns=198.51.100.53:53") {
		t.Errorf("session: %s", got)
	}
	f.Slots["health/isp1"] = facts.Slot{Facts: []facts.Fact{{Health: &facts.Health{Uplink: "isp1"}, Process: true}}}
	if d, err = Router(spec, f); err != nil {
		t.Fatal(err)
	}
	if got := d.Sessions[0].Config.(proxy.Config).Uplinks; len(got) != 1 || got[0].Name != "isp2" || got[0].Mark != 7102 || len(cfg.Uplinks) != 2 {
		t.Errorf("with isp1 unhealthy: probed over %v", got)
	}
	// Each with its MPTCP endpoints' addresses, by which the session
	// tells its subflows; none with mptcp off.
	spec = proxied()
	spec.Uplinks[0].MPTCP = &api.MPTCP{Mode: api.MPTCPSubflow}
	spec.Uplinks[1].MPTCP = &api.MPTCP{Mode: api.MPTCPBackup}
	d = compileUp(t, spec)
	if got := plan.Describe(d.Sessions[0]); !strings.HasSuffix(got, " probe-uplinks=isp1/7101,isp2/7102 mptcp-endpoints=isp1@10.101.0.2+2001:db8:101::2,isp2@10.102.0.2") {
		t.Errorf("session with MPTCP uplinks: %s", got)
	}
	spec.Uplinks[1].MPTCP.Mode = api.MPTCPOff
	d = compileUp(t, spec)
	if got := plan.Describe(d.Sessions[0]); !strings.HasSuffix(got, " mptcp-endpoints=isp1@10.101.0.2+2001:db8:101::2") {
		t.Errorf("session with isp2's MPTCP off: %s", got)
	}
}

// TestCompileProxyUDP: aggregation.udp's rules sit in the steering chain,
// after its exclusions, process-bound with the rest: peer steers LAN UDP
// to the session's socket (after the TCP rules, multicast and broadcast
// excepted), drop rejects UDP/443 and steers no UDP, direct adds
// nothing. With tcp: direct, udp: peer runs the session for UDP alone;
// drop, whose point is TCP's aggregation, then adds nothing.
func TestCompileProxyUDP(t *testing.T) {
	const (
		notUnicast = "not-unicast:meta l4proto udp fib daddr type != unicast return"
		udp4       = `udp-v4:iifname "lan0" meta l4proto udp tproxy ip to :7190 meta mark set 0x00001c16`
		udp6       = `udp-v6:iifname "lan0" meta l4proto udp tproxy ip6 to :7190 meta mark set 0x00001c16`
		tcp4       = `tcp-v4:iifname "lan0" meta l4proto tcp tproxy ip to :7190 meta mark set 0x00001c16`
		tcp6       = `tcp-v6:iifname "lan0" meta l4proto tcp tproxy ip6 to :7190 meta mark set 0x00001c16`
		quic       = `quic:iifname "lan0" udp dport 443 reject`
	)
	// The chain's rules after "peer", the last exclusion, in order.
	after := func(d []plan.Resource) []string {
		var out []string
		seen := false
		for _, l := range bound(t, d) {
			_, rest, ok := strings.Cut(l, "prerouting_tproxy:")
			if !ok {
				continue
			}
			id, rule, _ := strings.Cut(rest, "] rule=")
			if seen {
				out = append(out, id+":"+rule)
			}
			seen = seen || id == "peer"
		}
		return out
	}
	for _, tt := range []struct {
		tcp, udp string
		rules    []string
		session  string
	}{
		{api.TCPProxy, api.UDPPeer, []string{tcp4, tcp6, notUnicast, udp4, udp6}, "tcp=proxy udp=peer"},
		{api.TCPProxy, "", []string{tcp4, tcp6, notUnicast, udp4, udp6}, "tcp=proxy udp=peer"},
		{api.TCPProxy, api.UDPDrop, []string{tcp4, tcp6, quic}, "tcp=proxy udp=drop"},
		{api.TCPProxy, api.UDPDirect, []string{tcp4, tcp6}, "tcp=proxy udp=direct"},
		{api.TCPDirect, api.UDPPeer, []string{notUnicast, udp4, udp6}, "tcp=direct udp=peer"},
		{api.TCPDirect, api.UDPDrop, nil, ""},
		{api.TCPDirect, api.UDPDirect, nil, ""},
	} {
		spec := proxied()
		spec.Aggregation.TCP, spec.Aggregation.UDP = tt.tcp, tt.udp
		// The peer not proven up: the guard withdraws UDP's rules with
		// the rest, and LAN UDP goes direct.
		if d, _ := compileOrWantErr(t, spec, ""); len(bound(t, d.Resources)) != 0 {
			t.Errorf("tcp: %s, udp: %q: steering with the peer not proven up:\n%s", tt.tcp, tt.udp, strings.Join(bound(t, d.Resources), "\n"))
		}
		d := compileUp(t, spec)
		if got := after(d.Resources); !slices.Equal(got, tt.rules) {
			t.Errorf("tcp: %s, udp: %q: after the exclusions:\n%s\nwant:\n%s", tt.tcp, tt.udp, strings.Join(got, "\n"), strings.Join(tt.rules, "\n"))
		}
		var session string
		if len(d.Sessions) == 1 {
			desc := plan.Describe(d.Sessions[0])
			session, _, _ = strings.Cut(desc[strings.Index(desc, "tcp="):], " probe-uplinks=")
		}
		if session != tt.session {
			t.Errorf("tcp: %s, udp: %q: session %q, want %q", tt.tcp, tt.udp, session, tt.session)
		}
		if tt.session == "" && len(bound(t, d.Resources)) != 0 {
			t.Errorf("tcp: %s, udp: %q: steering without a session", tt.tcp, tt.udp)
		}
	}
}

// TestCompileProxyNoIPv6: a healthy verdict that the peer relays no IPv6
// leaves out exactly the IPv6 steering rules (TCP's and UDP's), with a
// note, and keeps all else; an unhealthy one still withdraws everything.
func TestCompileProxyNoIPv6(t *testing.T) {
	spec := proxied()
	addr := spec.Aggregation.Peer.Address
	up := compileUp(t, spec)
	f := peerUp(addr)
	f.Slots["proxy/aggregation"].Facts[0].Peer.NoIPv6 = true
	d, err := Router(spec, f)
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, l := range bound(t, up.Resources) {
		if !slices.Contains(bound(t, d.Resources), l) {
			gone = append(gone, l)
		}
	}
	if len(gone) != 2 || !strings.Contains(gone[0], ":tcp-v6]") || !strings.Contains(gone[1], ":udp-v6]") {
		t.Errorf("left out:\n%s\nwant the rules tcp-v6 and udp-v6 alone", strings.Join(gone, "\n"))
	}
	if len(bound(t, d.Resources)) != len(bound(t, up.Resources))-len(gone) {
		t.Errorf("steering added with NoIPv6:\n%s", strings.Join(bound(t, d.Resources), "\n"))
	}
	const note = "aggregation: the peer relays no IPv6: LAN IPv6 goes direct"
	var notes []string
	for _, n := range d.Notes {
		notes = append(notes, n.String())
	}
	if !slices.Contains(notes, note) {
		t.Errorf("notes %q, want %q", notes, note)
	}
	for _, n := range up.Notes {
		if n.String() == note {
			t.Errorf("the note with IPv6 relayed")
		}
	}

	f.Slots["proxy/aggregation"].Facts[0].Peer.Healthy = false
	if d, err = Router(spec, f); err != nil {
		t.Fatal(err)
	}
	if got := bound(t, d.Resources); len(got) != 0 {
		t.Errorf("a down peer relaying no IPv6: steering\n%s", strings.Join(got, "\n"))
	}
}
