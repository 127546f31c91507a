package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/internal/metrics"
	"github.com/braid-router/braid/sessions/dns"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

// dnsWiring is what the DNS forwarder's sessions share in one braid
// process: its counters (the metrics read them, and they survive a
// restart of the session), the upstream pool in use (for status and
// metrics), and the writer of the egress set elements (one netlink
// socket for the process).
type dnsWiring struct {
	stats *dns.Stats
	pool  atomic.Pointer[upstream.Pool]
	sets  *egressSets
}

func newDNSWiring() *dnsWiring {
	return &dnsWiring{stats: new(dns.Stats), sets: &egressSets{}}
}

// server is a new forwarder session.
func (w *dnsWiring) server() *dns.Server {
	return &dns.Server{Stats: w.stats, NewAsker: w.newAsker, Sets: w.sets, Health: w.health}
}

// newAsker makes the upstream pool of a configuration: its upstreams and
// fallback, and, with the peer upstream, the dialer through the
// aggregation peer (its key resolved now). The forwarder closes the pool
// it replaces.
func (w *dnsWiring) newAsker(cfg dns.Config) (dns.Asker, error) {
	pc := upstream.Config{Upstreams: cfg.Upstreams, Fallback: cfg.Fallback}
	if p := cfg.Peer; p != nil {
		if p.Key == nil {
			return nil, fmt.Errorf("dns: the peer upstream has no key")
		}
		password, err := p.Key.Resolve(nil, nil)
		if err != nil {
			return nil, fmt.Errorf("dns: the peer's key: %w", err)
		}
		if pc.Dial, err = upstream.NewPeerDialer(p.Address, p.Cipher, password); err != nil {
			return nil, err
		}
	}
	pool := upstream.New(pc)
	w.pool.Store(pool)
	return pool, nil
}

// health says what the upstreams are, for the forwarder's status.
func (w *dnsWiring) health() string {
	p := w.pool.Load()
	if p == nil {
		return ""
	}
	return upstreamHealth(p.Status())
}

// upstreamHealth writes the upstreams' states for status: each as
// "NAME ADDR up RTT" or "NAME ADDR dead (why)", the one asked first
// marked "in use", and the fallback apart: "upstreams: ...; fallback:
// ...".
func upstreamHealth(states []upstream.State) string {
	var ups, fallback []string
	for _, s := range states {
		w := s.Name
		if addr := s.Addr.String(); addr != s.Name {
			w += " " + addr
		}
		switch {
		case s.Up && s.RTT > 0:
			w += " up " + s.RTT.Round(10*time.Microsecond).String()
		case s.Up:
			w += " up"
		default:
			w += " dead"
			if s.Err != "" {
				w += " (" + s.Err + ")"
			}
		}
		if s.InUse {
			w += ", in use"
		}
		if s.Fallback {
			fallback = append(fallback, w)
		} else {
			ups = append(ups, w)
		}
	}
	var parts []string
	if len(ups) > 0 {
		parts = append(parts, "upstreams: "+strings.Join(ups, "; "))
	}
	if len(fallback) > 0 {
		parts = append(parts, "fallback: "+strings.Join(fallback, "; "))
	}
	return strings.Join(parts, " | ")
}

// metrics is what braid_dns_* report now.
func (w *dnsWiring) metrics() metrics.DNS {
	st := w.stats.Snapshot()
	m := metrics.DNS{Queries: st.Queries(), CacheHits: st.CacheHits, Filtered: st.Filtered, EgressElements: st.EgressElements}
	if p := w.pool.Load(); p != nil {
		for _, s := range p.Status() {
			m.Upstreams = append(m.Upstreams, metrics.DNSUpstream{Name: s.Name, Addr: s.Addr.String(),
				Fallback: s.Fallback, Up: s.Up, InUse: s.InUse, RTT: s.RTT})
		}
	}
	return m
}

// egressSets commits the forwarder's egress elements to braid's table,
// through the nftables driver's element writer, opened at the first
// answer that has elements, in braid's network namespace (the daemon's).
type egressSets struct {
	mu  sync.Mutex
	els *nftables.Elements
}

// Add implements dns.Sets.
func (s *egressSets) Add(ctx context.Context, es []nftables.TimedElement) error {
	if len(es) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.els == nil {
		els, err := nftables.OpenElements()
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.els = els
	}
	els := s.els
	s.mu.Unlock()
	return els.Add(ctx, es)
}
