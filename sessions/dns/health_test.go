package dns

import (
	"net/netip"
	"strings"
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
		{[]upstream.State{
			{Resolver: r("192.0.2.53", "192.0.2.53:53"), Up: false, Err: "timeout"},
			{Resolver: r("uplink:isp2", "[2001:db8:ffff::53]:53"), Fallback: true, Up: false},
		}, "upstreams: 192.0.2.53 192.0.2.53:53 dead (timeout) | fallback: uplink:isp2 [2001:db8:ffff::53]:53 dead | none up: each query asks them all at once"},
	} {
		if got := upstreamHealth(tt.states); got != tt.want {
			t.Errorf("upstreamHealth\n got %q\nwant %q", got, tt.want)
		}
	}
}

// The status detail names each resolver once: the one asked first is the
// one marked in use in the list, not named again ahead of it; without
// the resolvers' states (an Asker that keeps none), the configured ones,
// each name once.
func TestDetail(t *testing.T) {
	r := func(name, addr string) upstream.Resolver {
		return upstream.Resolver{Name: name, Addr: netip.MustParseAddrPort(addr)}
	}
	isp1 := r("uplink:isp1", "198.51.100.53:53")
	isp1v6 := r("uplink:isp1", "[2001:db8:ffff::53]:53")
	isp2 := r("uplink:isp2", "[2001:db8:102::53]:53")
	cfg := Config{Listen: []netip.Addr{netip.MustParseAddr("192.168.50.1")}, Port: 53,
		Upstreams: []upstream.Resolver{isp1, isp1v6}, Fallback: []upstream.Resolver{isp2}}
	st := Snapshot{QueriesUDP: 10, CacheHits: 4, CacheMisses: 6}
	for _, tt := range []struct {
		what string
		ups  []upstream.State
		want string
	}{
		{"an upstream in use", []upstream.State{
			{Resolver: isp1, Up: true, InUse: true, RTT: 410 * time.Microsecond},
			{Resolver: isp1v6, Up: true},
			{Resolver: isp2, Fallback: true, Up: true},
		}, "serving 192.168.50.1 port 53; 10 queries, 40% from cache; upstreams: uplink:isp1 198.51.100.53:53 up 410µs, in use; uplink:isp1 [2001:db8:ffff::53]:53 up | fallback: uplink:isp2 [2001:db8:102::53]:53 up"},
		{"the fallback in use", []upstream.State{
			{Resolver: isp1, Err: "timeout"},
			{Resolver: isp1v6, Err: "timeout"},
			{Resolver: isp2, Fallback: true, Up: true, InUse: true},
		}, "serving 192.168.50.1 port 53; 10 queries, 40% from cache; upstreams: uplink:isp1 198.51.100.53:53 dead (timeout); uplink:isp1 [2001:db8:ffff::53]:53 dead (timeout) | fallback: uplink:isp2 [2001:db8:102::53]:53 up, in use"},
		{"no states", nil, "serving 192.168.50.1 port 53; 10 queries, 40% from cache; upstreams: uplink:isp1 | fallback: uplink:isp2"},
	} {
		got := detail(cfg, st, tt.ups)
		if got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.what, got, tt.want)
		}
		for _, u := range tt.ups {
			if n := strings.Count(got, u.Name+" "+u.Addr.String()); n != 1 {
				t.Errorf("%s: %s %s named %d times in %q", tt.what, u.Name, u.Addr, n, got)
			}
		}
		if n := strings.Count(got, "in use"); tt.ups != nil && n != 1 {
			t.Errorf("%s: \"in use\" %d times in %q", tt.what, n, got)
		}
	}
}

// Intercept alone serves no address of its own: status says it answers
// only what it intercepts.
func TestDetailInterceptOnly(t *testing.T) {
	cfg := Config{Port: Port, InterceptPort: InterceptPort}
	want := "serving only what it intercepts, on port 7153; 0 queries"
	if got := detail(cfg, Snapshot{}, nil); got != want {
		t.Errorf("detail %q, want %q", got, want)
	}
	cfg.InterceptPort = 0
	if got, want := detail(cfg, Snapshot{}, nil), "serving nowhere; 0 queries"; got != want {
		t.Errorf("detail %q, want %q", got, want)
	}
}
