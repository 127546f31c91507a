package metrics

import (
	"testing"
	"time"

	"github.com/braid-router/braid/reconcile"
)

// The running forwarder's counters and its upstreams' health are read at
// each scrape; nothing is reported before a forwarder runs.
func TestMetricsDNS(t *testing.T) {
	m := New(func() reconcile.Status { return reconcile.Status{} })
	if fams := scrape(t, m); fams["braid_dns_queries_total"] != nil || fams["braid_dns_upstream_up"] != nil {
		t.Errorf("braid_dns_* reported before a forwarder runs")
	}
	s := DNS{Queries: 10, CacheHits: 4, Filtered: 2, EgressElements: 3, Upstreams: []DNSUpstream{
		{Name: "peer", Addr: "127.0.0.1:53", Up: false},
		{Name: "uplink:isp1", Addr: "198.51.100.53:53", Up: true, InUse: true, RTT: 1500 * time.Microsecond},
		{Name: "uplink:isp1", Addr: "198.51.100.53:53", Fallback: true, Up: true},
	}}
	m.WatchDNS(func() DNS { return s })
	fams := scrape(t, m)
	for name, want := range map[string]float64{"braid_dns_queries_total": 10, "braid_dns_cache_hits_total": 4,
		"braid_dns_filtered_answers_total": 2, "braid_dns_egress_elements_total": 3} {
		if got, ok := value(fams, name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, c := range []struct {
		name, upstream, fallback string
		want                     float64
	}{
		{"braid_dns_upstream_up", "peer", "false", 0},
		{"braid_dns_upstream_up", "uplink:isp1", "false", 1},
		{"braid_dns_upstream_up", "uplink:isp1", "true", 1},
		{"braid_dns_upstream_in_use", "uplink:isp1", "false", 1},
		{"braid_dns_upstream_in_use", "uplink:isp1", "true", 0},
		{"braid_dns_upstream_rtt_seconds", "uplink:isp1", "false", 0.0015},
	} {
		if got, ok := value(fams, c.name, "upstream", c.upstream, "fallback", c.fallback); !ok || got != c.want {
			t.Errorf("%s{upstream=%q,fallback=%s} = %v (present %v), want %v", c.name, c.upstream, c.fallback, got, ok, c.want)
		}
	}
	if _, ok := value(fams, "braid_dns_upstream_rtt_seconds", "upstream", "peer"); ok {
		t.Error("an RTT for the peer, which never answered")
	}
	s.Queries = 11
	if got, _ := value(scrape(t, m), "braid_dns_queries_total"); got != 11 {
		t.Errorf("second scrape: braid_dns_queries_total = %v, want 11", got)
	}
}
