package api

import (
	"reflect"
	"testing"
)

func TestSetDefaults(t *testing.T) {
	d := &Document{APIVersion: APIVersion, Kind: KindRouter, Metadata: Metadata{Name: "x"},
		Router: &RouterSpec{
			Uplinks: []Uplink{
				{Name: "a", Interface: "eth1"},
				{Name: "b", Interface: "eth2", Priority: 5, Table: 7150, MPTCP: &MPTCP{Mode: MPTCPBackup}, Health: &Health{}},
				{Name: "c", Interface: "eth3", MPTCP: &MPTCP{Fullmesh: true}, Health: &Health{Interval: "2s", FailAfter: 1, RecoverAfter: 2,
					Probes: []Probe{{DNS: "192.0.2.53", Name: "a.example"}, {DNS: "2001:db8::53", Name: "a.example"}, {DNS: "192.0.2.53:5353", Name: "a.example"}, {ICMP: "192.0.2.1"}}}},
				{Name: "d", Interface: "eth4", Health: &Health{Interval: "2s", Timeout: "1s"}},
			},
			Firewall: &Firewall{
				Open:    []OpenPort{{Port: 22}, {Port: 53, Proto: "udp"}},
				Forward: []PortForward{{Port: 80, To: "192.168.1.2:80"}},
			},
			Tunnels: []Tunnel{
				{Name: "t", L2TP: &L2TP{Server: "192.0.2.1", PPP: &PPP{Username: "u"}}},
				{Name: "u", Interface: "ppp6", L2TP: &L2TP{Server: "192.0.2.1", PPP: &PPP{Username: "u", Keepalive: "3s", KeepaliveFailures: 2}}},
				{Name: "fifteen-bytes-x"},
				{Name: "sixteen-bytes-xx"},
			},
			Aggregation: &Aggregation{Peer: &AggregationPeer{Address: "vps:1"}},
			DNS:         &DNS{},
		}}
	SetDefaults(d)
	s := d.Router
	want := []Uplink{
		{Name: "a", Interface: "eth1", Priority: 10, Table: 7101, MPTCP: &MPTCP{Mode: MPTCPSubflow}},
		{Name: "b", Interface: "eth2", Priority: 5, Table: 7150, MPTCP: &MPTCP{Mode: MPTCPBackup},
			Health: &Health{Interval: "500ms", Timeout: "500ms", FailAfter: 3, RecoverAfter: 5}},
		{Name: "c", Interface: "eth3", Priority: 30, Table: 7103, MPTCP: &MPTCP{Mode: MPTCPSubflow, Fullmesh: true},
			Health: &Health{Interval: "2s", Timeout: "2s", FailAfter: 1, RecoverAfter: 2,
				Probes: []Probe{{DNS: "192.0.2.53:53", Name: "a.example"}, {DNS: "[2001:db8::53]:53", Name: "a.example"}, {DNS: "192.0.2.53:5353", Name: "a.example"}, {ICMP: "192.0.2.1"}}}},
		{Name: "d", Interface: "eth4", Priority: 40, Table: 7104, MPTCP: &MPTCP{Mode: MPTCPSubflow},
			Health: &Health{Interval: "2s", Timeout: "1s", FailAfter: 3, RecoverAfter: 5}},
	}
	if !reflect.DeepEqual(s.Uplinks, want) {
		t.Errorf("uplinks:\n got %+v\nwant %+v", s.Uplinks, want)
	}
	if got := []string{s.Firewall.Open[0].Proto, s.Firewall.Open[1].Proto, s.Firewall.Forward[0].Proto}; !reflect.DeepEqual(got, []string{"tcp", "udp", "tcp"}) {
		t.Errorf("firewall protos = %v", got)
	}
	if got := []string{s.Tunnels[0].L2TP.PPP.Keepalive, s.Tunnels[1].L2TP.PPP.Keepalive}; !reflect.DeepEqual(got, []string{"10s", "3s"}) {
		t.Errorf("keepalives = %v", got)
	}
	if got := []int{s.Tunnels[0].L2TP.PPP.KeepaliveFailures, s.Tunnels[1].L2TP.PPP.KeepaliveFailures}; !reflect.DeepEqual(got, []int{4, 2}) {
		t.Errorf("keepaliveFailures = %v", got)
	}
	var ifnames []string
	for _, t := range s.Tunnels {
		ifnames = append(ifnames, t.Interface)
	}
	if want := []string{"t", "ppp6", "fifteen-bytes-x", ""}; !reflect.DeepEqual(ifnames, want) {
		t.Errorf("tunnel interfaces = %q, want %q (the name when it fits 15 bytes)", ifnames, want)
	}
	if s.Tunnels[0].L2TP.Server != "192.0.2.1" {
		t.Errorf("l2tp server = %q, want it as written", s.Tunnels[0].L2TP.Server)
	}
	wantAgg := &Aggregation{TCP: TCPProxy, UDP: UDPPeer, Peer: &AggregationPeer{Address: "vps:1", Protocol: "shadowsocks", Cipher: "chacha20-ietf-poly1305"}}
	if !reflect.DeepEqual(s.Aggregation, wantAgg) {
		t.Errorf("aggregation = %+v, want %+v", s.Aggregation, wantAgg)
	}
	if s.DNS.AAAA != "keep" {
		t.Errorf("dns.aaaa = %q", s.DNS.AAAA)
	}
	// Idempotent.
	before, _ := Effective(d)
	SetDefaults(d)
	after, _ := Effective(d)
	if string(before) != string(after) {
		t.Errorf("SetDefaults is not idempotent:\n%s\n---\n%s", before, after)
	}
}

func TestSetDefaultsPeer(t *testing.T) {
	d := &Document{Kind: KindPeer, Peer: &PeerSpec{}}
	SetDefaults(d)
	if d.Peer.Cipher != DefaultCipher {
		t.Errorf("peer cipher = %q", d.Peer.Cipher)
	}
	SetDefaults(&Document{}) // no spec: nothing to do, no panic
}

// TestParseAppliesDefaults checks that Parse returns the effective
// document, and that a written zero keeps its meaning of "default".
func TestParseAppliesDefaults(t *testing.T) {
	d, err := Parse("t.yaml", []byte(`apiVersion: braid/v1alpha1
kind: Router
metadata: {name: t}
spec:
  uplinks:
  - {name: a, interface: eth1, ipv4: {dhcp: {}}, priority: 0}
  - {name: b, interface: eth2, ipv4: {dhcp: {}}, health: {probes: [{icmp: 192.0.2.1}]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	u := d.Router.Uplinks
	if u[0].Priority != 10 || u[1].Priority != 20 || u[0].Table != 7101 || u[1].Table != 7102 {
		t.Errorf("priorities/tables = %d/%d %d/%d", u[0].Priority, u[0].Table, u[1].Priority, u[1].Table)
	}
	if u[1].Health.Interval != "500ms" || u[1].Health.Timeout != "500ms" || u[0].Health != nil {
		t.Errorf("health = %+v, %+v", u[0].Health, u[1].Health)
	}
}

// TestSetDefaultsMalformedInterval checks that a malformed interval is not
// copied to the timeout, so that it is reported once.
func TestSetDefaultsMalformedInterval(t *testing.T) {
	d := &Document{Kind: KindRouter, Router: &RouterSpec{Uplinks: []Uplink{{Health: &Health{Interval: "5"}}}}}
	SetDefaults(d)
	if h := d.Router.Uplinks[0].Health; h.Timeout != "" {
		t.Errorf("timeout = %q, want it unset with interval %q", h.Timeout, h.Interval)
	}
}
