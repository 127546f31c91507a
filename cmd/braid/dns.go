package main

import (
	"sync/atomic"

	"github.com/braid-router/braid/internal/metrics"
	"github.com/braid-router/braid/sessions/dns"
)

// dnsWiring is what the DNS forwarder's sessions share in one braid
// process: their counters (the metrics read them, and they survive a
// restart of the session) and the session running now, whose upstreams'
// health the metrics report.
type dnsWiring struct {
	stats *dns.Stats
	srv   atomic.Pointer[dns.Server]
}

func newDNSWiring() *dnsWiring {
	return &dnsWiring{stats: new(dns.Stats)}
}

// server is a new forwarder session: its upstream pool and egress writer
// are the forwarder's own (upstream.New with the peer's dialer,
// nftables.OpenElements).
func (w *dnsWiring) server() *dns.Server {
	s := &dns.Server{Stats: w.stats}
	w.srv.Store(s)
	return s
}

// metrics is what braid_dns_* report now.
func (w *dnsWiring) metrics() metrics.DNS {
	st := w.stats.Snapshot()
	m := metrics.DNS{Queries: st.Queries(), CacheHits: st.CacheHits, Filtered: st.Filtered, EgressElements: st.EgressElements}
	if srv := w.srv.Load(); srv != nil {
		for _, s := range srv.Upstreams() {
			m.Upstreams = append(m.Upstreams, metrics.DNSUpstream{Name: s.Name, Addr: s.Addr.String(),
				Fallback: s.Fallback, Up: s.Up, InUse: s.InUse, RTT: s.RTT})
		}
	}
	return m
}
