//go:build braid_nometrics

package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/braid-router/braid/reconcile"
)

// ErrNoMetrics is Start's error in a braid built with the braid_nometrics
// tag (the small builds for router CPUs: the Prometheus client and its
// protobuf dependency weigh about 2.2 MB).
var ErrNoMetrics = errors.New("--metrics-listen: this braid was built without metrics (build tag braid_nometrics)")

// Metrics stands for the registry; this build has none.
type Metrics struct{}

// Start returns ErrNoMetrics.
func Start(context.Context, string, *reconcile.Daemon, *slog.Logger) (*Metrics, net.Addr, error) {
	return nil, nil, ErrNoMetrics
}

// ObserveHealthTransition does nothing.
func (*Metrics) ObserveHealthTransition(string, bool) {}

// ObservePeerRejected does nothing.
func (*Metrics) ObservePeerRejected(string) {}

// ObservePeerRejectedDatagram does nothing.
func (*Metrics) ObservePeerRejectedDatagram(string) {}

// WatchPeer does nothing.
func (*Metrics) WatchPeer(func() PeerHeld) {}

// WatchDNS does nothing.
func (*Metrics) WatchDNS(func() DNS) {}

// WatchSubflows does nothing.
func (*Metrics) WatchSubflows(func() []SubflowVerdict) {}
