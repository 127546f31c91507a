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
// status's own counters of applying, repairing and failed passes). The Go
// runtime's and the process's standard series are served beside braid's.
// The text exposition format is written by braid itself (expose.go) and
// served by internal/minhttp: together a few tens of kilobytes where the
// Prometheus client (2.2 MB) and net/http (2.6 MiB) weighed, so the router
// builds keep their metrics.
package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/braid-router/braid/internal/minhttp"
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

// Metrics is braid's registry: the counters the hooks feed, and what is
// read when scraped.
type Metrics struct {
	status      func() reconcile.Status
	passes      *counterVec
	duration    *hist
	transitions *counterVec
	rejected    *counterVec
	peer        atomic.Pointer[func() PeerHeld]
	dns         atomic.Pointer[func() DNS]
	subflows    atomic.Pointer[func() []SubflowVerdict]
}

// New makes the registry. status is called at every scrape (the daemon's
// Status method): it must be safe to call concurrently with passes.
func New(status func() reconcile.Status) *Metrics {
	m := &Metrics{
		status: status,
		passes: newCounterVec("braid_passes_total",
			"Passes the daemon ran, by result (converged or error).", "result"),
		duration: newHist("braid_pass_duration_seconds",
			"How long each pass took, from its start to its status: load, compile, plan, apply and verify.", DurationBuckets),
		transitions: newCounterVec("braid_uplink_health_transitions_total",
			"Changes of an uplink's health verdict, by uplink and by the verdict it went to (healthy or unhealthy).", "uplink", "to"),
		rejected: newCounterVec("braid_peer_rejected_connections_total",
			"Connections (transport tcp) and UDP relay datagrams (transport udp) the aggregation peer gave nothing to, by reason: auth (the first chunk or the datagram did not authenticate: a wrong key, garbage), truncated, replay (a salt seen before), address, local (a destination refused), capped (tcp: over its source's cap, closed at once, also counted under its first reason; udp: one association too many).", "reason", "transport"),
	}
	for _, r := range Results {
		m.passes.add(0, r)
	}
	return m
}

// ObservePass counts a pass and observes its duration. It has the shape of
// reconcile.Daemon's OnPass hook, which calls it with the daemon's lock
// held: it only touches the metrics, never the daemon.
func (m *Metrics) ObservePass(p reconcile.PassStatus, _ reconcile.Status) {
	m.passes.inc(p.Result)
	m.duration.observe(p.Duration.Seconds())
}

// ObserveHealthTransition counts a change of an uplink's health verdict.
// The uplink's health tracker calls it, on its own goroutine.
func (m *Metrics) ObserveHealthTransition(uplink string, healthy bool) {
	to := "unhealthy"
	if healthy {
		to = "healthy"
	}
	m.transitions.inc(uplink, to)
}

// ObservePeerRejected counts a connection the aggregation peer rejected,
// with its reason. The peer calls it on the connection's goroutine.
func (m *Metrics) ObservePeerRejected(reason string) {
	m.rejected.inc(reason, "tcp")
}

// ObservePeerRejectedDatagram counts a datagram the aggregation peer's UDP
// relay rejected, with its reason. The relay calls it on its goroutines.
func (m *Metrics) ObservePeerRejectedDatagram(reason string) {
	m.rejected.inc(reason, "udp")
}

// WatchPeer makes braid_peer_held report what held returns at each scrape
// (the running peer's counts; the last one watched when its session
// restarts). It may be called from any goroutine.
func (m *Metrics) WatchPeer(held func() PeerHeld) { m.peer.Store(&held) }

// peerFamilies reads the running peer's counts; nothing before a peer
// runs.
func (m *Metrics) peerFamilies() []*family {
	f := m.peer.Load()
	if f == nil {
		return nil
	}
	h := (*f)()
	held := &family{name: "braid_peer_held", kind: gauge,
		help: "What the aggregation peer holds now, by what: relayed (connections relayed to a destination), rejected (rejected connections read and discarded, at most 1,024), associations (UDP relay associations, at most 1,024 by default)."}
	held.add(float64(h.Relayed), "what", "relayed")
	held.add(float64(h.Rejected), "what", "rejected")
	held.add(float64(h.Associations), "what", "associations")
	return []*family{held}
}

// Expose writes every metric in the text exposition format.
func (m *Metrics) Expose(w io.Writer) error {
	fams := []*family{m.passes.family(), m.duration.family(), m.transitions.family(), m.rejected.family()}
	fams = append(fams, m.statusFamilies()...)
	fams = append(fams, m.peerFamilies()...)
	fams = append(fams, m.dnsFamilies()...)
	fams = append(fams, m.subflowsFamilies()...)
	fams = append(fams, runtimeFamilies()...)
	fams = append(fams, processFamilies()...)
	return writeFamilies(w, fams)
}

// ContentType is the text exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the metrics in the text exposition format.
func (m *Metrics) Handler() minhttp.Handler {
	return minhttp.HandlerFunc(func(w *minhttp.ResponseWriter, r *minhttp.Request) {
		w.Header().Set("Content-Type", ContentType)
		m.Expose(w)
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
	mux := minhttp.NewServeMux()
	mux.Handle("GET "+Path, m.Handler())
	srv := &minhttp.Server{Handler: mux, Timeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("serving metrics failed; the daemon goes on without them", "listen", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+Path)
	return m, ln.Addr(), nil
}

// statusFamilies reads the daemon's status once and makes its metrics.
func (m *Metrics) statusFamilies() []*family {
	st := m.status()
	one := func(name string, k kind, v float64, help string) *family {
		f := &family{name: name, help: help, kind: k}
		f.add(v)
		return f
	}
	objects := &family{name: "braid_objects", kind: gauge,
		help: "Objects braid owns for the current spec, by state after the last pass (done, pending, error)."}
	byState := ObjectsByState(st.Objects)
	for _, state := range States {
		objects.add(float64(byState[state]), "state", string(state))
	}
	revision := &family{name: "braid_spec_revision_info", kind: gauge,
		help: "The spec revision being converged (the last valid one), as the label revision; absent before one loads."}
	if st.Revision != "" {
		revision.add(1, "revision", st.Revision)
	}
	lastPass := &family{name: "braid_last_pass_timestamp_seconds", kind: gauge,
		help: "When the last pass started, in seconds since the Unix epoch; absent before the first."}
	if st.LastPass != nil {
		lastPass.add(float64(st.LastPass.Start.UnixNano()) / 1e9)
	}
	healthy := &family{name: "braid_uplink_healthy", kind: gauge,
		help: "1 while an uplink's health tracker judges it healthy, 0 while unhealthy; absent for an uplink without a verdict."}
	peerUp := &family{name: "braid_peer_up", kind: gauge,
		help: "1 while the transparent proxy judges its aggregation peer healthy (steered LAN traffic goes through it), 0 while down (LAN traffic goes direct); absent before its first verdict."}
	seen := map[string]bool{}
	for _, e := range st.Facts.Entries {
		if h := e.Fact.Health; h != nil && !seen[h.Uplink] {
			seen[h.Uplink] = true
			healthy.add(boolValue(h.Healthy), "uplink", h.Uplink)
		}
		if p := e.Fact.Peer; p != nil && !seen["peer/"+p.Address] {
			seen["peer/"+p.Address] = true
			peerUp.add(boolValue(p.Healthy), "peer", p.Address)
		}
	}
	return []*family{
		one("braid_drift_repairs_total", counter, float64(st.Repairs),
			"Passes that changed the kernel when no spec or fact change explains it: drift repaired."),
		one("braid_applying_passes_total", counter, float64(st.Applying),
			"Passes that changed something (a new spec or facts, or drift)."),
		one("braid_failed_passes_total", counter, float64(st.Failures),
			"Passes that ended in an error (retried with backoff)."),
		objects,
		one("braid_conflicts", gauge, float64(len(st.Conflicts)),
			"Foreign objects in the way of one braid wants, left alone, at the last pass."),
		one("braid_foreign_drops", gauge, float64(plan.CountKind(st.PlanWarnings, plan.WarnForeignDrop)),
			"Flows braid lets through that another firewall on the box drops (or may drop), at the last pass; not changes, braid leaves that firewall alone."),
		revision,
		one("braid_spec_rejected", gauge, boolValue(st.SpecError != ""),
			"1 when the newest revision is not applied (invalid or quarantined) and the last good one stays."),
		one("braid_trial_pending", gauge, boolValue(st.Trial != nil),
			"1 while a new revision is on trial, awaiting braid confirm or its probes; it is reverted if they do not come."),
		one("braid_quarantined_revisions", gauge, float64(len(st.Quarantined)),
			"Revisions reverted and never applied again until the source changes."),
		lastPass,
		healthy,
		peerUp,
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
