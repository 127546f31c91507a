//go:build !braid_nometrics

// Package metrics exports the daemon's passes and status as Prometheus
// metrics, on an endpoint of its own (`braid run --metrics-listen ADDR`).
//
// Three sources feed it: the daemon's OnPass hook, called after every pass,
// counts passes by result and observes their duration; the uplinks' health
// trackers call ObserveHealthTransition on every change of verdict (a
// counter must see each one, and the facts hub's notifications coalesce,
// so a flap faster than a scrape or a pass would be lost if the counter
// were derived from the facts); a collector reads
// the daemon's status at every scrape for everything else (objects by
// state, conflicts, the revision, the trial and the quarantine, and the
// status's own counters of applying, repairing and failed passes). The
// registry is braid's own, never Prometheus's global default one, and
// holds the Go runtime and process collectors beside braid's metrics.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// DurationBuckets are the upper bounds, in seconds, of the pass duration
// histogram: a no-op pass on a small box takes milliseconds, a pass that
// writes thousands of routes a few hundred.
var DurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// States are the object states braid_objects always reports, 0 included,
// so that a state that empties shows 0 rather than disappearing.
var States = []plan.State{plan.Done, plan.Pending, plan.Failed}

// Results are the pass results braid_passes_total always reports.
var Results = []string{reconcile.ResultConverged, reconcile.ResultFailed}

// Metrics is braid's registry: the pass counters the OnPass hook feeds,
// and a collector that reads the daemon's status when scraped.
type Metrics struct {
	reg         *prometheus.Registry
	passes      *prometheus.CounterVec
	duration    prometheus.Histogram
	transitions *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	peer        *peerCollector
	dns         *dnsCollector
	subflows    *subflowsCollector
}

// New makes the registry. status is called at every scrape (the daemon's
// Status method): it must be safe to call concurrently with passes.
func New(status func() reconcile.Status) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "braid_passes_total",
			Help: "Passes the daemon ran, by result (converged or error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "braid_pass_duration_seconds",
			Help:    "How long each pass took, from its start to its status: load, compile, plan, apply and verify.",
			Buckets: DurationBuckets,
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "braid_uplink_health_transitions_total",
			Help: "Changes of an uplink's health verdict, by uplink and by the verdict it went to (healthy or unhealthy).",
		}, []string{"uplink", "to"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "braid_peer_rejected_connections_total",
			Help: "Connections (transport tcp) and UDP relay datagrams (transport udp) the aggregation peer gave nothing to, by reason: auth (the first chunk or the datagram did not authenticate: a wrong key, garbage), truncated, replay (a salt seen before), address, local (a destination refused), capped (tcp: over its source's cap, closed at once, also counted under its first reason; udp: one association too many).",
		}, []string{"reason", "transport"}),
		peer:     &peerCollector{},
		dns:      &dnsCollector{},
		subflows: &subflowsCollector{},
	}
	for _, r := range Results {
		m.passes.WithLabelValues(r)
	}
	m.reg.MustRegister(
		m.passes,
		m.duration,
		m.transitions,
		m.rejected,
		m.peer,
		m.dns,
		m.subflows,
		&statusCollector{status: status},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// ObservePass counts a pass and observes its duration. It has the shape of
// reconcile.Daemon's OnPass hook, which calls it with the daemon's lock
// held: it only touches the metrics, never the daemon.
func (m *Metrics) ObservePass(p reconcile.PassStatus, _ reconcile.Status) {
	m.passes.WithLabelValues(p.Result).Inc()
	m.duration.Observe(p.Duration.Seconds())
}

// ObserveHealthTransition counts a change of an uplink's health verdict.
// The uplink's health tracker calls it, on its own goroutine.
func (m *Metrics) ObserveHealthTransition(uplink string, healthy bool) {
	to := "unhealthy"
	if healthy {
		to = "healthy"
	}
	m.transitions.WithLabelValues(uplink, to).Inc()
}

// ObservePeerRejected counts a connection the aggregation peer rejected,
// with its reason. The peer calls it on the connection's goroutine.
func (m *Metrics) ObservePeerRejected(reason string) {
	m.rejected.WithLabelValues(reason, "tcp").Inc()
}

// ObservePeerRejectedDatagram counts a datagram the aggregation peer's UDP
// relay rejected, with its reason. The relay calls it on its goroutines.
func (m *Metrics) ObservePeerRejectedDatagram(reason string) {
	m.rejected.WithLabelValues(reason, "udp").Inc()
}

// WatchPeer makes braid_peer_held report what held returns at each scrape
// (the running peer's counts; the last one watched when its session
// restarts). It may be called from any goroutine.
func (m *Metrics) WatchPeer(held func() PeerHeld) { m.peer.held.Store(&held) }

var descPeerHeld = prometheus.NewDesc("braid_peer_held",
	"What the aggregation peer holds now, by what: relayed (connections relayed to a destination), rejected (rejected connections read and discarded, at most 1,024), associations (UDP relay associations, at most 1,024 by default).", []string{"what"}, nil)

// peerCollector reads the running peer's counts at every scrape; it
// reports nothing before a peer runs.
type peerCollector struct {
	held atomic.Pointer[func() PeerHeld]
}

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descPeerHeld }

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.held.Load()
	if f == nil {
		return
	}
	h := (*f)()
	for what, v := range map[string]int{"relayed": h.Relayed, "rejected": h.Rejected, "associations": h.Associations} {
		ch <- prometheus.MustNewConstMetric(descPeerHeld, prometheus.GaugeValue, float64(v), what)
	}
}

// Gatherer is the registry, for a handler or a test to read.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the registry in the exposition formats Prometheus asks
// for. A collector that fails is reported in the response, and the rest is
// still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:      m.reg, // promhttp's own error counters
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Start exports d's metrics on addr (host:port) at Path until ctx ends, and
// returns them, for the health trackers to report to. It chains the hook
// onto d.OnPass, so it must be called before d.Run. The
// listener opens in the calling process's network namespace (braid run
// has re-executed itself into --netns by then), and an address that cannot
// be listened on is an error; once serving, a failure is logged, never
// fatal: routing does not stop because metrics did. It returns the address
// listened on (the port chosen, for ":0").
func Start(ctx context.Context, addr string, d *reconcile.Daemon, log *slog.Logger) (*Metrics, net.Addr, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := New(d.Status)
	prev := d.OnPass
	d.OnPass = func(p reconcile.PassStatus, st reconcile.Status) {
		m.ObservePass(p, st)
		if prev != nil {
			prev(p, st)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serving metrics failed; the daemon goes on without them", "listen", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+Path)
	return m, ln.Addr(), nil
}

// statusCollector reads the daemon's status at every scrape.
type statusCollector struct {
	status func() reconcile.Status
}

var (
	descRepairs = prometheus.NewDesc("braid_drift_repairs_total",
		"Passes that changed the kernel when no spec or fact change explains it: drift repaired.", nil, nil)
	descApplying = prometheus.NewDesc("braid_applying_passes_total",
		"Passes that changed something (a new spec or facts, or drift).", nil, nil)
	descFailed = prometheus.NewDesc("braid_failed_passes_total",
		"Passes that ended in an error (retried with backoff).", nil, nil)
	descObjects = prometheus.NewDesc("braid_objects",
		"Objects braid owns for the current spec, by state after the last pass (done, pending, error).", []string{"state"}, nil)
	descConflicts = prometheus.NewDesc("braid_conflicts",
		"Foreign objects in the way of one braid wants, left alone, at the last pass.", nil, nil)
	descForeignDrops = prometheus.NewDesc("braid_foreign_drops",
		"Flows braid lets through that another firewall on the box drops (or may drop), at the last pass; not changes, braid leaves that firewall alone.", nil, nil)
	descRevision = prometheus.NewDesc("braid_spec_revision_info",
		"The spec revision being converged (the last valid one), as the label revision; absent before one loads.", []string{"revision"}, nil)
	descRejected = prometheus.NewDesc("braid_spec_rejected",
		"1 when the newest revision is not applied (invalid or quarantined) and the last good one stays.", nil, nil)
	descTrial = prometheus.NewDesc("braid_trial_pending",
		"1 while a new revision is on trial, awaiting braid confirm or its probes; it is reverted if they do not come.", nil, nil)
	descQuarantined = prometheus.NewDesc("braid_quarantined_revisions",
		"Revisions reverted and never applied again until the source changes.", nil, nil)
	descHealthy = prometheus.NewDesc("braid_uplink_healthy",
		"1 while an uplink's health tracker judges it healthy, 0 while unhealthy; absent for an uplink without a verdict.", []string{"uplink"}, nil)
	descPeerUp = prometheus.NewDesc("braid_peer_up",
		"1 while the transparent proxy judges its aggregation peer healthy (steered LAN traffic goes through it), 0 while down (LAN traffic goes direct); absent before its first verdict.", []string{"peer"}, nil)
	descLastPass = prometheus.NewDesc("braid_last_pass_timestamp_seconds",
		"When the last pass started, in seconds since the Unix epoch; absent before the first.", nil, nil)
)

// Describe sends every descriptor the collector may emit.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRepairs, descApplying, descFailed, descObjects, descConflicts, descForeignDrops,
		descRevision, descRejected, descTrial, descQuarantined, descLastPass, descHealthy, descPeerUp} {
		ch <- d
	}
}

// Collect reads the status once and sends its metrics.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descRepairs, st.Repairs)
	counter(descApplying, st.Applying)
	counter(descFailed, st.Failures)
	for state, n := range ObjectsByState(st.Objects) {
		gauge(descObjects, float64(n), string(state))
	}
	gauge(descConflicts, float64(len(st.Conflicts)))
	gauge(descForeignDrops, float64(plan.CountKind(st.PlanWarnings, plan.WarnForeignDrop)))
	if st.Revision != "" {
		gauge(descRevision, 1, st.Revision)
	}
	gauge(descRejected, boolValue(st.SpecError != ""))
	gauge(descTrial, boolValue(st.Trial != nil))
	gauge(descQuarantined, float64(len(st.Quarantined)))
	if st.LastPass != nil {
		gauge(descLastPass, float64(st.LastPass.Start.UnixNano())/1e9)
	}
	seen := map[string]bool{}
	for _, e := range st.Facts.Entries {
		if h := e.Fact.Health; h != nil && !seen[h.Uplink] {
			seen[h.Uplink] = true
			gauge(descHealthy, boolValue(h.Healthy), h.Uplink)
		}
		if p := e.Fact.Peer; p != nil && !seen["peer/"+p.Address] {
			seen["peer/"+p.Address] = true
			gauge(descPeerUp, boolValue(p.Healthy), p.Address)
		}
	}
}

// ObjectsByState counts objects by state, with every one of States
// present (0 when none is in it).
func ObjectsByState(objects []plan.Status) map[plan.State]int {
	n := make(map[plan.State]int, len(States))
	for _, s := range States {
		n[s] = 0
	}
	for _, o := range objects {
		n[o.State]++
	}
	return n
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
