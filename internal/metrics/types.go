package metrics

import "time"

// Path is where the endpoint serves the metrics.
const Path = "/metrics"

// PeerHeld is what the aggregation peer holds at a moment.
type PeerHeld struct {
	// Relayed connections, Rejected connections held (read and
	// discarded), and UDP relay Associations.
	Relayed, Rejected, Associations int
}

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

// SubflowVerdict is the transparent proxy's verdict on one uplink's MPTCP
// subflows to the aggregation peer.
type SubflowVerdict struct {
	// Uplink is the uplink's name.
	Uplink string
	// OK: its subflows establish; not OK: the proxy flags it.
	OK bool
}
