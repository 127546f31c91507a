package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// freePort returns a TCP port nothing listens on in the box's namespace.
func (b *box) freePort() int {
	b.t.Helper()
	var port int
	err := netns.Do(b.ns, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		return ln.Close()
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return port
}

// scrape GETs /metrics at addr from inside the box's namespace and parses
// the text exposition. The socket is made on a thread in the namespace (a
// socket stays in the namespace it was made in), so the request reaches
// only a listener in there.
func (b *box) scrape(addr string) (map[string]*dto.MetricFamily, error) {
	var conn net.Conn
	err := netns.Do(b.ns, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// metricValue is the value of the family's sample whose labels include
// the given name/value pairs (a histogram's is its count); ok is false when
// there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
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

// mustValue is metricValue, failing the test when the sample is missing.
func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricValue(fams, name, labels...)
	if !ok {
		t.Fatalf("no %s%v in the scrape", name, labels)
	}
	return v
}

func TestRunExportsMetrics(t *testing.T) {
	b := newBox(t)
	addr := fmt.Sprintf("127.0.0.1:%d", b.freePort())
	d := b.startDaemon("-f", writeSpec(t, labSpec), "--metrics-listen", addr)
	st := d.until("the first pass", converged)
	if !strings.Contains(d.logs.String(), "serving metrics") {
		t.Errorf("no log line says where metrics are served:\n%s", d.logs.String())
	}
	before, err := b.scrape(addr)
	if err != nil {
		t.Fatalf("scrape from inside the namespace: %v", err)
	}
	// The objects gauge is braid status's object list, by state.
	counts := map[plan.State]int{}
	for _, o := range st.Objects {
		counts[o.State]++
	}
	total := 0.0
	for _, s := range []plan.State{plan.Done, plan.Pending, plan.Failed} {
		got := mustValue(t, before, "braid_objects", "state", string(s))
		if int(got) != counts[s] {
			t.Errorf("braid_objects{state=%q} = %v, braid status --json has %d", s, got, counts[s])
		}
		total += got
	}
	if int(total) != len(st.Objects) || counts[plan.Done] != len(st.Objects) || len(st.Objects) == 0 {
		t.Errorf("braid_objects sums to %v, status lists %d objects (%d done)", total, len(st.Objects), counts[plan.Done])
	}
	if v := mustValue(t, before, "braid_spec_revision_info", "revision", st.Revision); v != 1 {
		t.Errorf("braid_spec_revision_info{revision=%q} = %v", st.Revision, v)
	}
	for name, want := range map[string]float64{
		"braid_drift_repairs_total":   0,
		"braid_applying_passes_total": 1,
		"braid_failed_passes_total":   0,
		"braid_conflicts":             0,
		"braid_trial_pending":         0,
		"braid_quarantined_revisions": 0,
	} {
		if got := mustValue(t, before, name); got != want {
			t.Errorf("%s = %v after the first pass, want %v", name, got, want)
		}
	}
	if mustValue(t, before, "process_resident_memory_bytes") <= 0 || mustValue(t, before, "go_goroutines") <= 0 {
		t.Error("the process and Go collectors report nothing")
	}
	passes := mustValue(t, before, "braid_passes_total", "result", reconcile.ResultConverged)
	if passes < 1 || mustValue(t, before, "braid_pass_duration_seconds") != passes+mustValue(t, before, "braid_passes_total", "result", reconcile.ResultFailed) {
		t.Errorf("%v converged passes, histogram count %v", passes, mustValue(t, before, "braid_pass_duration_seconds"))
	}

	// Drift: a braid route deleted by hand is repaired, and counted.
	b.ip("route", "del", "default", "via", "10.101.0.1", "table", "main")
	st = d.until("the repair", func(st reconcile.Status) bool { return st.Repairs == 1 && converged(st) })
	after, err := b.scrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustValue(t, after, "braid_passes_total", "result", reconcile.ResultConverged); got <= passes {
		t.Errorf("braid_passes_total{result=converged}: %v before the repair, %v after", passes, got)
	}
	if got := mustValue(t, after, "braid_drift_repairs_total"); got != 1 {
		t.Errorf("braid_drift_repairs_total = %v after one repair", got)
	}
	if got := mustValue(t, after, "braid_applying_passes_total"); got != 2 {
		t.Errorf("braid_applying_passes_total = %v after the first pass and one repair", got)
	}
	if got := mustValue(t, after, "braid_objects", "state", string(plan.Done)); int(got) != len(st.Objects) {
		t.Errorf("braid_objects{state=done} = %v after the repair, status lists %d", got, len(st.Objects))
	}
	// The scrape came after the status: a pass may have run in between.
	if p, _ := metricValue(after, "braid_passes_total", "result", reconcile.ResultConverged); uint64(p) < st.Passes-st.Failures {
		t.Errorf("braid_passes_total{result=converged} = %v, status: %d passes, %d failed", p, st.Passes, st.Failures)
	}
}

func TestRunRefusesABadMetricsAddress(t *testing.T) {
	b := newBox(t)
	r := b.braid(nil, "run", "-f", writeSpec(t, labSpec), "--metrics-listen", "127.0.0.1:notaport")
	if r.code == 0 || !strings.Contains(r.stderr, "--metrics-listen") {
		t.Errorf("braid run with a bad --metrics-listen: exit %d: %s", r.code, r.stderr)
	}
}
