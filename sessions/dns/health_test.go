package dns

import (
	"net/netip"
	"testing"
	"time"

	"github.com/braid-router/braid/sessions/dns/upstream"
)

// The forwarder's status says each upstream's health, the one in use, and
// the fallback apart.
func TestUpstreamHealth(t *testing.T) {
	r := func(name, addr string) upstream.Resolver {
		return upstream.Resolver{Name: name, Addr: netip.MustParseAddrPort(addr)}
	}
	for _, tt := range []struct {
		states []upstream.State
		want   string
	}{
		{nil, ""},
		{[]upstream.State{
			{Resolver: r("peer", "127.0.0.1:53"), Up: false, Err: "timeout"},
			{Resolver: r("192.0.2.53", "192.0.2.53:53"), Up: true, InUse: true, RTT: 1234567 * time.Nanosecond},
			{Resolver: r("uplink:isp1", "198.51.100.53:53"), Fallback: true, Up: true},
		}, "upstreams: peer 127.0.0.1:53 dead (timeout); 192.0.2.53 192.0.2.53:53 up 1.23ms, in use | fallback: uplink:isp1 198.51.100.53:53 up"},
		{[]upstream.State{
			{Resolver: r("[2001:db8::53]:53", "[2001:db8::53]:53"), Up: false},
			{Resolver: r("uplink:isp2", "[2001:db8:ffff::53]:53"), Fallback: true, Up: true, InUse: true},
		}, "upstreams: [2001:db8::53]:53 dead | fallback: uplink:isp2 [2001:db8:ffff::53]:53 up, in use"},
	} {
		if got := upstreamHealth(tt.states); got != tt.want {
			t.Errorf("upstreamHealth\n got %q\nwant %q", got, tt.want)
		}
	}
}
