package metrics

// What both builds share: the full one (metrics.go) and the one without
// Prometheus (metrics_off.go, build tag braid_nometrics).

// Path is where the endpoint serves the metrics.
const Path = "/metrics"

// PeerHeld is what the aggregation peer holds at a moment.
type PeerHeld struct {
	// Relayed connections, Rejected connections held (read and
	// discarded), and UDP relay Associations.
	Relayed, Rejected, Associations int
}
