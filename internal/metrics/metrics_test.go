package metrics

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/minhttp"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// scrape serves m's handler once, over HTTP, and parses the text
// exposition with Prometheus's own parser.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&minhttp.Server{Handler: m.Handler()}).Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+Path, nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", Path, resp.Status)
	}
	if got := expfmt.ResponseFormat(resp.Header); got.FormatType() != expfmt.TypeTextPlain {
		t.Errorf("Content-Type %q is not read as the text format (%v)", resp.Header.Get("Content-Type"), got)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// value is the value of the family's metric whose labels are the given
// name/value pairs; ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsBeforeTheFirstPass(t *testing.T) {
	fams := scrape(t, New(func() reconcile.Status { return reconcile.Status{} }))
	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"braid_passes_total", []string{"result", "converged"}, 0},
		{"braid_passes_total", []string{"result", "error"}, 0},
		{"braid_pass_duration_seconds", nil, 0},
		{"braid_drift_repairs_total", nil, 0},
		{"braid_objects", []string{"state", "done"}, 0},
		{"braid_objects", []string{"state", "pending"}, 0},
		{"braid_objects", []string{"state", "error"}, 0},
		{"braid_trial_pending", nil, 0},
	} {
		if got, ok := value(fams, want.name, want.labels...); !ok || got != want.value {
			t.Errorf("%s%v = %v (present %v), want %v", want.name, want.labels, got, ok, want.value)
		}
	}
	for _, absent := range []string{"braid_spec_revision_info", "braid_last_pass_timestamp_seconds"} {
		if fams[absent] != nil {
			t.Errorf("%s present before a revision or pass", absent)
		}
	}
	for _, std := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[std] == nil {
			t.Errorf("%s missing: the Go and process collectors are not registered", std)
		}
	}
}

func TestMetricsFollowPassesAndStatus(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	st := reconcile.Status{
		Revision:  "abc123",
		SpecError: "spec.yaml:3:1: bad",
		Applying:  2, Repairs: 1, Failures: 1,
		Trial:       &reconcile.Trial{Revision: "abc123"},
		Quarantined: []reconcile.Quarantined{{Revision: "old"}, {Revision: "older"}},
		Objects: []plan.Status{
			{Address: "a", State: plan.Done}, {Address: "b", State: plan.Done},
			{Address: "c", State: plan.Pending}, {Address: "d", State: plan.Failed, Error: "no"},
		},
		Conflicts: []plan.Conflict{{Address: "route[main 0.0.0.0/0 metric 10]"}},
		LastPass:  &reconcile.PassStatus{Start: start},
		PlanWarnings: []plan.Warning{{Kind: plan.WarnForeignDrop, Key: "a"}, {Kind: plan.WarnForeignDrop, Key: "b"},
			{Kind: plan.WarnUnanalysed, Key: "legacy"}},
	}
	m := New(func() reconcile.Status { return st })
	m.ObservePass(reconcile.PassStatus{Result: reconcile.ResultConverged, Duration: 3 * time.Millisecond}, st)
	m.ObservePass(reconcile.PassStatus{Result: reconcile.ResultConverged, Duration: 40 * time.Millisecond}, st)
	m.ObservePass(reconcile.PassStatus{Result: reconcile.ResultFailed, Duration: 2 * time.Second}, st)
	fams := scrape(t, m)
	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"braid_passes_total", []string{"result", "converged"}, 2},
		{"braid_passes_total", []string{"result", "error"}, 1},
		{"braid_pass_duration_seconds", nil, 3},
		{"braid_drift_repairs_total", nil, 1},
		{"braid_applying_passes_total", nil, 2},
		{"braid_failed_passes_total", nil, 1},
		{"braid_objects", []string{"state", "done"}, 2},
		{"braid_objects", []string{"state", "pending"}, 1},
		{"braid_objects", []string{"state", "error"}, 1},
		{"braid_conflicts", nil, 1},
		{"braid_foreign_drops", nil, 2},
		{"braid_spec_revision_info", []string{"revision", "abc123"}, 1},
		{"braid_spec_rejected", nil, 1},
		{"braid_trial_pending", nil, 1},
		{"braid_quarantined_revisions", nil, 2},
		{"braid_last_pass_timestamp_seconds", nil, float64(start.Unix())},
	} {
		if got, ok := value(fams, want.name, want.labels...); !ok || got != want.value {
			t.Errorf("%s%v = %v (present %v), want %v", want.name, want.labels, got, ok, want.value)
		}
	}
	h := fams["braid_pass_duration_seconds"].GetMetric()[0].GetHistogram()
	if got := h.GetSampleSum(); got < 2.042 || got > 2.044 {
		t.Errorf("duration sum %v s, want 2.043", got)
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		switch ub := b.GetUpperBound(); {
		case ub >= 2:
			want = 3
		case ub >= 0.04:
			want = 2
		case ub >= 0.003:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

func TestObjectsByState(t *testing.T) {
	got := ObjectsByState([]plan.Status{{State: plan.Done}, {State: plan.Done}, {State: plan.Failed}})
	want := map[plan.State]int{plan.Done: 2, plan.Pending: 0, plan.Failed: 1}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("%s: %d, want %d", s, got[s], n)
		}
	}
}

// The health trackers' transitions are counted by uplink and direction,
// and the facts' verdicts are a gauge per uplink.
func TestMetricsHealth(t *testing.T) {
	st := reconcile.Status{Facts: reconcile.FactsStatus{Entries: []facts.Entry{
		{Owner: "health/isp1", Fact: facts.Fact{Health: &facts.Health{Uplink: "isp1", Healthy: false}}},
		{Owner: "health/isp2", Fact: facts.Fact{Health: &facts.Health{Uplink: "isp2", Healthy: true}}},
		{Owner: "dhcp4/isp2", Fact: facts.Fact{Lease4: &facts.Lease4{Uplink: "isp2"}}},
	}}}
	m := New(func() reconcile.Status { return st })
	if fams := scrape(t, m); fams["braid_uplink_health_transitions_total"] != nil {
		t.Errorf("transitions counted before any")
	}
	m.ObserveHealthTransition("isp1", false)
	m.ObserveHealthTransition("isp1", true)
	m.ObserveHealthTransition("isp1", false)
	fams := scrape(t, m)
	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"braid_uplink_health_transitions_total", []string{"uplink", "isp1", "to", "unhealthy"}, 2},
		{"braid_uplink_health_transitions_total", []string{"uplink", "isp1", "to", "healthy"}, 1},
		{"braid_uplink_healthy", []string{"uplink", "isp1"}, 0},
		{"braid_uplink_healthy", []string{"uplink", "isp2"}, 1},
	} {
		if got, ok := value(fams, want.name, want.labels...); !ok || got != want.value {
			t.Errorf("%s%v = %v (present %v), want %v", want.name, want.labels, got, ok, want.value)
		}
	}
	if n := len(fams["braid_uplink_healthy"].GetMetric()); n != 2 {
		t.Errorf("braid_uplink_healthy has %d series, want one per uplink with a verdict", n)
	}
}

// The proxy's verdict on its peer is a gauge, absent before the first.
func TestMetricsPeerUp(t *testing.T) {
	st := reconcile.Status{}
	m := New(func() reconcile.Status { return st })
	if fams := scrape(t, m); fams["braid_peer_up"] != nil {
		t.Errorf("braid_peer_up before any verdict")
	}
	for _, healthy := range []bool{true, false} {
		st.Facts.Entries = []facts.Entry{{Owner: "proxy/aggregation", Fact: facts.Fact{Peer: &facts.Peer{Address: "10.203.0.2:8390", Healthy: healthy}}}}
		want := 0.0
		if healthy {
			want = 1
		}
		if got, ok := value(scrape(t, m), "braid_peer_up", "peer", "10.203.0.2:8390"); !ok || got != want {
			t.Errorf("healthy %v: braid_peer_up = %v (present %v), want %v", healthy, got, ok, want)
		}
	}
}

// The aggregation peer's rejected connections are counted by reason.
func TestMetricsPeerRejected(t *testing.T) {
	m := New(func() reconcile.Status { return reconcile.Status{} })
	if fams := scrape(t, m); fams["braid_peer_rejected_connections_total"] != nil {
		t.Errorf("rejections counted before any")
	}
	m.ObservePeerRejected("auth")
	m.ObservePeerRejected("replay")
	m.ObservePeerRejected("auth")
	m.ObservePeerRejectedDatagram("auth")
	fams := scrape(t, m)
	for _, c := range []struct {
		reason, transport string
		want              float64
	}{{"auth", "tcp", 2}, {"replay", "tcp", 1}, {"auth", "udp", 1}} {
		if got, ok := value(fams, "braid_peer_rejected_connections_total", "reason", c.reason, "transport", c.transport); !ok || got != c.want {
			t.Errorf("braid_peer_rejected_connections_total{reason=%q,transport=%q} = %v (present %v), want %v", c.reason, c.transport, got, ok, c.want)
		}
	}
}

// What the running peer holds is read at each scrape.
func TestMetricsPeerHeld(t *testing.T) {
	m := New(func() reconcile.Status { return reconcile.Status{} })
	if fams := scrape(t, m); fams["braid_peer_held"] != nil {
		t.Errorf("braid_peer_held reported before a peer runs")
	}
	held := PeerHeld{Relayed: 3, Rejected: 2, Associations: 1}
	m.WatchPeer(func() PeerHeld { return held })
	for round := range 2 {
		fams := scrape(t, m)
		for what, want := range map[string]int{"relayed": held.Relayed, "rejected": held.Rejected, "associations": held.Associations} {
			if got, ok := value(fams, "braid_peer_held", "what", what); !ok || got != float64(want) {
				t.Errorf("round %d: braid_peer_held{what=%q} = %v (present %v), want %v", round, what, got, ok, want)
			}
		}
		held = PeerHeld{Relayed: 7}
	}
}

// The proxy's verdicts on the uplinks' MPTCP subflows are a gauge per
// uplink: absent before a proxy runs, 1 for ok, 0 for flagged.
func TestMetricsSubflows(t *testing.T) {
	m := New(func() reconcile.Status { return reconcile.Status{} })
	if fams := scrape(t, m); fams["braid_uplink_mptcp_subflows_ok"] != nil {
		t.Errorf("braid_uplink_mptcp_subflows_ok before a proxy runs")
	}
	m.WatchSubflows(func() []SubflowVerdict {
		return []SubflowVerdict{{Uplink: "isp1", OK: true}, {Uplink: "isp2"}}
	})
	fams := scrape(t, m)
	for uplink, want := range map[string]float64{"isp1": 1, "isp2": 0} {
		if got, ok := value(fams, "braid_uplink_mptcp_subflows_ok", "uplink", uplink); !ok || got != want {
			t.Errorf("%s: braid_uplink_mptcp_subflows_ok = %v (present %v), want %v", uplink, got, ok, want)
		}
	}
}
