package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DNS is what braid's DNS forwarder (session[dns/resolver]) counts and
// knows at a moment: its counters since it started, and each upstream's
// health.
type DNS struct {
	// Queries the LAN asked, CacheHits answered from the cache, Filtered
	// answers the AAAA policy changed, EgressElements the per-domain
	// egress set elements committed to the kernel.
	Queries, CacheHits, Filtered, EgressElements uint64
	// Upstreams are the resolvers it asks, upstreams then fallback.
	Upstreams []DNSUpstream
}

// DNSUpstream is one resolver the forwarder asks.
type DNSUpstream struct {
	// Name is "peer", "uplink:NAME" or the address as the spec wrote it;
	// Addr its address and port.
	Name, Addr string
	// Fallback: one of the uplinks' resolvers, asked when every upstream
	// is dead. Up: asked (it answered its last try). InUse: asked first
	// now.
	Fallback, Up, InUse bool
	// RTT is the round trip of its last answer; zero before one.
	RTT time.Duration
}

// WatchDNS makes the braid_dns_* metrics report what stats returns at
// each scrape (the running forwarder's; the last one watched when its
// session restarts). It may be called from any goroutine.
func (m *Metrics) WatchDNS(stats func() DNS) { m.dns.stats.Store(&stats) }

var (
	descDNSQueries = prometheus.NewDesc("braid_dns_queries_total",
		"Queries braid's DNS forwarder was asked by the LAN, since its session started.", nil, nil)
	descDNSCacheHits = prometheus.NewDesc("braid_dns_cache_hits_total",
		"Queries the forwarder answered from its cache.", nil, nil)
	descDNSFiltered = prometheus.NewDesc("braid_dns_filtered_answers_total",
		"Answers the AAAA policy changed (dns.aaaa: filter, dns.filterAAAA): AAAA records dropped, ipv6hint stripped.", nil, nil)
	descDNSEgress = prometheus.NewDesc("braid_dns_egress_elements_total",
		"Per-domain egress set elements the forwarder committed to the kernel (added or renewed) before answering.", nil, nil)
	descDNSUpstreamUp = prometheus.NewDesc("braid_dns_upstream_up",
		"1 while the forwarder asks an upstream resolver (it answered its last try), 0 while it is skipped as dead; fallback=\"true\" for the uplinks' resolvers asked when every upstream is dead.",
		[]string{"upstream", "address", "fallback"}, nil)
	descDNSUpstreamInUse = prometheus.NewDesc("braid_dns_upstream_in_use",
		"1 for the resolver the forwarder asks first now: the first upstream up, or the first fallback when every upstream is dead.",
		[]string{"upstream", "address", "fallback"}, nil)
	descDNSUpstreamRTT = prometheus.NewDesc("braid_dns_upstream_rtt_seconds",
		"The round trip of an upstream resolver's last answer; absent before one.", []string{"upstream", "address", "fallback"}, nil)
)

// dnsCollector reads the running forwarder's counts at every scrape; it
// reports nothing before a forwarder runs.
type dnsCollector struct {
	stats atomic.Pointer[func() DNS]
}

func (c *dnsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDNSQueries, descDNSCacheHits, descDNSFiltered, descDNSEgress,
		descDNSUpstreamUp, descDNSUpstreamInUse, descDNSUpstreamRTT} {
		ch <- d
	}
}

func (c *dnsCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.stats.Load()
	if f == nil {
		return
	}
	s := (*f)()
	for d, v := range map[*prometheus.Desc]uint64{descDNSQueries: s.Queries, descDNSCacheHits: s.CacheHits,
		descDNSFiltered: s.Filtered, descDNSEgress: s.EgressElements} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	seen := map[[3]string]bool{}
	for _, u := range s.Upstreams {
		labels := [3]string{u.Name, u.Addr, strconv.FormatBool(u.Fallback)}
		if seen[labels] {
			continue // a resolver listed twice is one series
		}
		seen[labels] = true
		ch <- prometheus.MustNewConstMetric(descDNSUpstreamUp, prometheus.GaugeValue, boolValue(u.Up), labels[:]...)
		ch <- prometheus.MustNewConstMetric(descDNSUpstreamInUse, prometheus.GaugeValue, boolValue(u.InUse), labels[:]...)
		if u.RTT > 0 {
			ch <- prometheus.MustNewConstMetric(descDNSUpstreamRTT, prometheus.GaugeValue, u.RTT.Seconds(), labels[:]...)
		}
	}
}
