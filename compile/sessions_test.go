package compile

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/braid-router/braid/probe"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/sessions/health"
)

// healthConfigs parses src, compiles it with no facts and returns the
// health sessions' configurations by uplink.
func healthConfigs(t *testing.T, src string) map[string]health.Config {
	t.Helper()
	doc, err := api.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Router(doc.Router, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]health.Config{}
	for _, s := range d.Sessions {
		if s.Kind == health.Kind {
			out[s.Name] = s.Config.(health.Config)
		}
	}
	return out
}

// The health section's timing and probes reach the tracker as written,
// with the defaults of api.SetDefaults: interval 500ms, timeout the
// interval, a DNS probe's port 53.
func TestCompileHealthSession(t *testing.T) {
	got := healthConfigs(t, `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: t}
spec:
  uplinks:
  - name: a
    interface: eth1
    ipv4: {static: {address: 192.0.2.2/24, gateway: 192.0.2.1}}
    health:
      probes: [{icmp: 192.0.2.1}, {tcp: "198.51.100.7:443"}, {dns: 192.0.2.53, name: example.com}, {dns: "[2001:db8::53]:5353", name: example.org}]
      interval: 2s
      timeout: 750ms
      failAfter: 2
      recoverAfter: 4
  - name: b
    interface: eth2
    ipv4: {static: {address: 198.51.100.2/24, gateway: 198.51.100.1}}
    health: {probes: [{icmp: 198.51.100.1}]}
`)
	want := map[string]health.Config{
		"a": {Uplink: "a", Interface: "eth1", Sources: []netip.Addr{netip.MustParseAddr("192.0.2.2")},
			Probes:   []api.Probe{{ICMP: "192.0.2.1"}, {TCP: "198.51.100.7:443"}, {DNS: "192.0.2.53:53", Name: "example.com"}, {DNS: "[2001:db8::53]:5353", Name: "example.org"}},
			Interval: 2 * time.Second, Timeout: 750 * time.Millisecond, FailAfter: 2, RecoverAfter: 4},
		"b": {Uplink: "b", Interface: "eth2", Sources: []netip.Addr{netip.MustParseAddr("198.51.100.2")},
			Probes:   []api.Probe{{ICMP: "198.51.100.1"}},
			Interval: 500 * time.Millisecond, Timeout: 500 * time.Millisecond, FailAfter: 3, RecoverAfter: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("health configurations:\n got %+v\nwant %+v", got, want)
	}
}

// A tracker with no address to probe from waits for the uplink's lease or
// router advertisements.
func TestCompileHealthWaits(t *testing.T) {
	doc, err := api.Parse("t.yaml", []byte(`apiVersion: braid/v1alpha1
kind: Router
metadata: {name: t}
spec:
  uplinks:
  - {name: a, interface: eth1, ipv4: {dhcp: {}}, health: {probes: [{icmp: 192.0.2.1}]}}
  - {name: b, interface: eth2, ipv6: {ra: {}}, health: {probes: [{icmp: 2001:db8::1}]}}
  - {name: c, interface: eth3, ipv4: {static: {address: 198.51.100.2/24}}, health: {probes: [{icmp: 198.51.100.1}]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Router(doc.Router, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range d.Sessions {
		if s.Kind == health.Kind {
			got[s.Name] = s.Wait
		}
	}
	want := map[string]string{"a": "the DHCP lease of uplink a", "b": "the router advertisements of uplink b", "c": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("waits = %q, want %q", got, want)
	}
}

func TestTargets(t *testing.T) {
	spec := twoUplinks()
	if got := Targets(spec); got != nil {
		t.Errorf("no management probes, no peer: %v", got)
	}
	spec.Management = &api.Management{Probes: []api.Probe{
		{TCP: "192.168.50.10:22"}, {ICMP: "192.168.50.10"}, {ICMP: "2001:db8:50::10"},
	}}
	spec.Aggregation = &api.Aggregation{Peer: &api.AggregationPeer{Address: "vps.example.net:65101"}}
	want := []probe.Target{
		{Kind: probe.TCP, Addr: "192.168.50.10:22"},
		{Kind: probe.ICMP, Addr: "192.168.50.10"},
		{Kind: probe.ICMP, Addr: "2001:db8:50::10"},
		{Kind: probe.TCP, Addr: "vps.example.net:65101"},
	}
	if got := Targets(spec); !slices.Equal(got, want) {
		t.Errorf("Targets\n got %v\nwant %v", got, want)
	}
	// The desired state carries them for the daemon's trials.
	d, err := Router(spec, facts.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Targets, want) {
		t.Errorf("desired targets %v, want %v", d.Targets, want)
	}
	if Targets(nil) != nil {
		t.Error("a nil spec has targets")
	}
}
