package compile

import (
	"slices"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/probe"
)

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
