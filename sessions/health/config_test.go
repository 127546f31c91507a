package health

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
)

func TestConfigFields(t *testing.T) {
	c := Config{
		Uplink: "fibre", Interface: "eth1",
		Sources:  []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")},
		Probes:   []api.Probe{{ICMP: "192.0.2.1"}, {TCP: "198.51.100.7:443"}, {DNS: "192.0.2.53:53", Name: "example.com"}},
		Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, FailAfter: 3, RecoverAfter: 5,
	}
	want := []plan.Field{
		{Name: "uplink", Value: "fibre"},
		{Name: "interface", Value: "eth1"},
		{Name: "sources", Value: "192.0.2.2,2001:db8::2"},
		{Name: "probes", Value: "icmp 192.0.2.1,tcp 198.51.100.7:443,dns 192.0.2.53:53 example.com"},
		{Name: "interval", Value: "500ms"},
		{Name: "timeout", Value: "400ms"},
		{Name: "failAfter", Value: "3"},
		{Name: "recoverAfter", Value: "5"},
	}
	if got := c.Fields(); !reflect.DeepEqual(got, want) {
		t.Errorf("Fields:\n got %+v\nwant %+v", got, want)
	}
}
