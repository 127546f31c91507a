package dns

import "sync/atomic"

// Stats are the forwarder's counters, safe for concurrent use. A Server
// counts into the Stats it is given (Server.Stats), so that the metrics
// collector can read the same ones; they only grow, across restarts of
// the session.
type Stats struct {
	// QueriesUDP and QueriesTCP count the queries read, well-formed or
	// not, by transport.
	QueriesUDP, QueriesTCP atomic.Uint64
	// CacheHits and CacheMisses count the well-formed queries answered
	// from the cache and those that were not.
	CacheHits, CacheMisses atomic.Uint64
	// Coalesced counts the misses (and prefetches) that waited for an
	// identical query already asked upstream instead of asking again.
	Coalesced atomic.Uint64
	// UpstreamQueries counts the queries asked upstream (prefetches
	// included); UpstreamFailures those no upstream answered (the client
	// got SERVFAIL).
	UpstreamQueries, UpstreamFailures atomic.Uint64
	// Prefetches counts the popular answers asked again before they
	// expired.
	Prefetches atomic.Uint64
	// Filtered counts the answers the AAAA policy changed.
	Filtered atomic.Uint64
	// EgressElements counts the egress set elements committed (one per
	// address per answer, renewals included); EgressFailures the answers
	// whose elements could not be committed (the answer was sent
	// anyway).
	EgressElements, EgressFailures atomic.Uint64
	// Truncated counts the UDP replies cut to the client's size, with TC
	// set.
	Truncated atomic.Uint64
	// Malformed counts the queries answered FORMERR, NOTIMP or BADVERS,
	// or dropped as unparsable.
	Malformed atomic.Uint64
	// Refused counts the queries dropped and the TCP connections closed
	// because a bound was reached: in-flight queries, TCP connections,
	// in total or per client.
	Refused atomic.Uint64
}

// Snapshot is a copy of Stats' counters at one moment.
type Snapshot struct {
	QueriesUDP, QueriesTCP            uint64
	CacheHits, CacheMisses            uint64
	Coalesced                         uint64
	UpstreamQueries, UpstreamFailures uint64
	Prefetches                        uint64
	Filtered                          uint64
	EgressElements, EgressFailures    uint64
	Truncated                         uint64
	Malformed                         uint64
	Refused                           uint64
}

// Snapshot reads the counters. Each is read atomically; together they are
// not one atomic view (a query may be counted in one and not yet in
// another).
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		QueriesUDP:       s.QueriesUDP.Load(),
		QueriesTCP:       s.QueriesTCP.Load(),
		CacheHits:        s.CacheHits.Load(),
		CacheMisses:      s.CacheMisses.Load(),
		Coalesced:        s.Coalesced.Load(),
		UpstreamQueries:  s.UpstreamQueries.Load(),
		UpstreamFailures: s.UpstreamFailures.Load(),
		Prefetches:       s.Prefetches.Load(),
		Filtered:         s.Filtered.Load(),
		EgressElements:   s.EgressElements.Load(),
		EgressFailures:   s.EgressFailures.Load(),
		Truncated:        s.Truncated.Load(),
		Malformed:        s.Malformed.Load(),
		Refused:          s.Refused.Load(),
	}
}

// Queries is the number of queries read, both transports.
func (s Snapshot) Queries() uint64 { return s.QueriesUDP + s.QueriesTCP }
