package compile

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/linediff"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/sessions/peer"
)

func compilePeer(t *testing.T, src string) (sessions []peer.Config, res []plan.Resource, notes []plan.Note) {
	t.Helper()
	doc, err := api.Parse("peer.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Compile(doc, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Sessions {
		if s.Kind != peer.Kind || s.Name != peer.Name {
			t.Fatalf("unexpected session %s", s.Address())
		}
		sessions = append(sessions, s.Config.(peer.Config))
	}
	return sessions, d.Resources, d.Notes
}

// A peer spec compiles to its session, with the spec's listen, cipher
// (the default when unset), key and allowLocal, and to the MPTCP limits
// and sysctls that let it accept a subflow per box uplink.
func TestPeerCompiles(t *testing.T) {
	cfgs, res, notes := compilePeer(t, `apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  listen: "[::]:65101"
  key: {env: PEER_KEY}
  allowLocal: ["127.0.0.1:53"]
`)
	want := peer.Config{Listen: "[::]:65101", Cipher: "chacha20-ietf-poly1305", Key: &api.Secret{Env: "PEER_KEY"}, AllowLocal: []string{"127.0.0.1:53"}}
	if len(cfgs) != 1 || !reflect.DeepEqual(cfgs[0], want) {
		t.Fatalf("sessions = %+v, want %+v", cfgs, want)
	}
	wantRes := []plan.Resource{
		nl.Sysctl{Name: "net.mptcp.enabled", Value: "1"},
		nl.Sysctl{Name: "net.mptcp.pm_type", Value: "0"},
		mptcp.Limits{Subflows: 8, AddAddrAccepted: 0},
	}
	if !reflect.DeepEqual(res, wantRes) {
		t.Fatalf("resources = %v, want %v", res, wantRes)
	}
	if len(notes) != 0 {
		t.Fatalf("notes = %v, want none without management", notes)
	}
	// The key shows as its reference in plans.
	for _, f := range cfgs[0].Fields() {
		if f.Name == "key" && f.Value != "env:PEER_KEY" {
			t.Fatalf("key field = %q", f.Value)
		}
	}
}

// A peer without listen runs no session, and the plan says so.
func TestPeerWithoutListen(t *testing.T) {
	cfgs, _, notes := compilePeer(t, `apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  cipher: aes-128-gcm
  key: {value: x}
`)
	if len(cfgs) != 0 {
		t.Fatalf("a peer without listen runs %+v", cfgs)
	}
	if len(notes) != 1 || notes[0].Section != "listen" {
		t.Fatalf("notes = %v, want one for listen", notes)
	}
}

// With management.allow, the peer's input chain is the router's where
// they are the same (established, ICMP errors, invalid, loopback,
// management.allow to every port, RFC 4890's ICMP and ICMPv6), then DHCP
// replies and the listener's port in TCP and UDP, then a drop of the
// rest on every interface. Its management probes are the targets.
func TestPeerFirewallWithManagement(t *testing.T) {
	doc, err := api.Parse("peer.yaml", []byte(`apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  listen: "[::]:65101"
  key: {env: PEER_KEY}
  management:
    allow: [198.51.100.0/24, 2001:db8:1::/48, 203.0.113.0/24]
    probes: [{tcp: "198.51.100.7:22"}, {icmp: "2001:db8:1::7"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Compile(doc, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Concat([]string{
		"nft.table[inet braid] state=active",
		"nft.set[inet braid allow_v4] type=ipv4_addr flags=interval elements=2",
		"nft.set[inet braid allow_v6] type=ipv6_addr flags=interval elements=1",
		"nft.chain[inet braid input] type=filter hook=input priority=filter policy=accept",
	}, wantStateRules("input"), []string{
		"nft.rule[inet braid input:loopback] rule=iifname \"lo\" accept",
		"nft.rule[inet braid input:allow-v4] rule=ip saddr @allow_v4 accept",
		"nft.rule[inet braid input:allow-v6] rule=ip6 saddr @allow_v6 accept",
	}, wantInputICMP, []string{
		"nft.rule[inet braid input:dhcpv4] rule=udp dport 68 accept",
		"nft.rule[inet braid input:dhcpv6] rule=ip6 saddr fe80::/10 udp dport 546 accept",
		"nft.rule[inet braid input:listen-tcp] rule=tcp dport 65101 accept",
		"nft.rule[inet braid input:listen-udp] rule=udp dport 65101 accept",
		"nft.rule[inet braid input:drop] rule=counter drop",
	})
	if got := nftLines(d.Resources); !slices.Equal(got, want) {
		t.Errorf("braid's table on the peer:\n%s", linediff.Diff(strings.Join(want, "\n"), strings.Join(got, "\n")))
	}
	// The MPTCP settings and the session are still there, and nothing
	// is noted as not converged.
	if len(d.Resources) != len(want)+3 || len(d.Sessions) != 1 {
		t.Errorf("%d resources and %d sessions, want %d and 1", len(d.Resources), len(d.Sessions), len(want)+3)
	}
	if len(d.Notes) != 0 {
		t.Errorf("notes = %v, want none", d.Notes)
	}
	wantTargets := []probe.Target{{Kind: probe.TCP, Addr: "198.51.100.7:22"}, {Kind: probe.ICMP, Addr: "2001:db8:1::7"}}
	if !slices.Equal(d.Targets, wantTargets) {
		t.Errorf("targets = %v, want %v", d.Targets, wantTargets)
	}
}

// Without management.allow braid adds no input drop on the peer: no
// table at all, even with probes (which are still targets); without
// listen, management.allow still keeps the peer's firewall, with no
// listener to open.
func TestPeerFirewallWithoutManagementAllow(t *testing.T) {
	for _, c := range []struct {
		name, management string
		rules            int
		listener         bool
	}{
		{"no management", "", 0, false},
		{"probes only", "  management: {probes: [{tcp: \"198.51.100.7:22\"}]}\n", 0, false},
		{"empty allow", "  management: {allow: []}\n", 0, false},
		{"allow, no listen", "  management: {allow: [198.51.100.0/24]}\n", 1, false},
		{"allow, listen", "  listen: \"vps.example.net:443\"\n  management: {allow: [198.51.100.0/24]}\n", 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc, err := api.Parse("peer.yaml", []byte("apiVersion: braid/v1alpha1\nkind: Peer\nmetadata: {name: vps}\nspec:\n  key: {value: x}\n"+c.management))
			if err != nil {
				t.Fatal(err)
			}
			d, err := Compile(doc, facts.Set{})
			if err != nil {
				t.Fatal(err)
			}
			lines := nftLines(d.Resources)
			drops, listener := 0, false
			for _, l := range lines {
				if strings.Contains(l, " drop") {
					drops++
				}
				if strings.Contains(l, "input:listen-") {
					listener = true
					if !strings.Contains(l, "dport 443 accept") {
						t.Errorf("listener rule %s, want port 443", l)
					}
				}
			}
			if c.rules == 0 && len(lines) != 0 {
				t.Errorf("braid's table on a peer without management.allow:\n%s", strings.Join(lines, "\n"))
			}
			if c.rules > 0 && drops != 2 {
				t.Errorf("want the invalid drop and the final drop, got:\n%s", strings.Join(lines, "\n"))
			}
			if listener != c.listener {
				t.Errorf("listener rules: %v, want %v:\n%s", listener, c.listener, strings.Join(lines, "\n"))
			}
		})
	}
}
