package compile

import (
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
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

// bound lists the process-bound objects of a desired state as the plan
// shows them, with their owner.
func bound(t *testing.T, rs []plan.Resource) []string {
	t.Helper()
	var out []string
	for _, r := range rs {
		if b, ok := r.(plan.ProcessBound); ok {
			out = append(out, b.Owner+" "+r.Address()+" "+plan.Describe(r))
		}
	}
	return out
}

// TestCompileProxy is the whole of the proxy's steering for a spec with
// every kind of exclusion: the session, and the nftables and netlink
// objects that only the daemon keeps, while that session runs. Nothing
// else changes.
func TestCompileProxy(t *testing.T) {
	d, _ := compileOrWantErr(t, proxied(), "")
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
	if got := plan.Describe(s); got != "port=7190 peer=203.0.113.7:65101 protocol=shadowsocks cipher=aes-256-gcm key=file:/etc/braid/peer.key tcp=proxy udp=peer" {
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
	d, _ := compileOrWantErr(t, spec, "")
	if got := ruleOf(d.Resources, "peer"); got != "rule=ip6 daddr 2001:db8:7::1 return" {
		t.Errorf("IPv6 peer: %q", got)
	}
	spec.Aggregation.Peer.Address = "[::ffff:203.0.113.7]:65101"
	d, _ = compileOrWantErr(t, spec, "")
	if got := ruleOf(d.Resources, "peer"); got != "rule=ip daddr 203.0.113.7 return" {
		t.Errorf("IPv4-mapped peer: %q", got)
	}
	spec.Aggregation.Peer.Address = "vps.example.net:65101"
	spec.Aggregation.TCP = ""
	spec.Aggregation.Bypass = nil
	spec.Routes = nil
	d, _ = compileOrWantErr(t, spec, "")
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
	d, err := Router(doc.Router, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if got := bound(t, d.Resources); len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "tproxy ip6 to :7190") {
		t.Errorf("sfr-6pe.yaml's steering:\n%s", strings.Join(got, "\n"))
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
		d, _ := compileOrWantErr(t, spec, "")
		if got := after(d.Resources); !slices.Equal(got, tt.rules) {
			t.Errorf("tcp: %s, udp: %q: after the exclusions:\n%s\nwant:\n%s", tt.tcp, tt.udp, strings.Join(got, "\n"), strings.Join(tt.rules, "\n"))
		}
		var session string
		if len(d.Sessions) == 1 {
			desc := plan.Describe(d.Sessions[0])
			session = desc[strings.Index(desc, "tcp="):]
		}
		if session != tt.session {
			t.Errorf("tcp: %s, udp: %q: session %q, want %q", tt.tcp, tt.udp, session, tt.session)
		}
		if tt.session == "" && len(bound(t, d.Resources)) != 0 {
			t.Errorf("tcp: %s, udp: %q: steering without a session", tt.tcp, tt.udp)
		}
	}
}
