package reconcile

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/source"
)

// memSource is a spec source in memory.
type memSource struct {
	mu      sync.Mutex
	data    string
	changed func()
	loads   int
}

func (m *memSource) String() string { return "memory" }
func (m *memSource) Load(context.Context) (source.Revision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	return source.Revision{Name: "mem.yaml", Data: []byte(m.data)}, nil
}
func (m *memSource) Watch(ctx context.Context, changed func()) error {
	m.mu.Lock()
	m.changed = changed
	m.mu.Unlock()
	<-ctx.Done()
	return nil
}
func (m *memSource) set(data string) {
	m.mu.Lock()
	m.data = data
	f := m.changed
	m.mu.Unlock()
	if f != nil {
		f()
	}
}

const daemonSpec = `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: d}
spec:
  uplinks:
  - name: isp1
    interface: wan1
    ipv4: {static: {address: 10.101.0.2/24, gateway: 10.101.0.1}}
`

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedDriver owns every resource and is safe for the daemon's goroutine
// and the test's: the daemon's logic is tested here; the kernel drivers have
// their own tests.
type lockedDriver struct {
	mu  sync.Mutex
	mem *memDriver
}

func (l *lockedDriver) Name() string            { return "mem" }
func (l *lockedDriver) Owns(plan.Resource) bool { return true }
func (l *lockedDriver) Observe(ctx context.Context, d []plan.Resource) ([]plan.Observed, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mem.Observe(ctx, d)
}
func (l *lockedDriver) Apply(ctx context.Context, c plan.Change) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mem.Apply(ctx, c)
}
func (l *lockedDriver) writes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(*l.mem.log)
}

// drift removes one live object, as someone's `ip route del` would.
func (l *lockedDriver) drift() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.mem.live {
		delete(l.mem.live, k)
		return
	}
}

func TestDaemonConvergesAndKeepsTheLastGoodSpec(t *testing.T) {
	var log []string
	drv := &lockedDriver{mem: newMem("any", &log)}
	src := &memSource{data: daemonSpec}
	d := &Daemon{Engine: &Engine{Drivers: []Driver{drv}}, Source: src, Interval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	waitFor(t, "the first pass", func() bool { return d.Status().Passes >= 1 })
	st := d.Status()
	if st.LastPass.Result != ResultConverged || st.Applying != 1 || st.Revision == "" {
		t.Fatalf("first pass: %+v %+v", st, st.LastPass)
	}
	first := st.Revision
	n := drv.writes()
	// An edit is one more pass that applies it.
	src.set(strings.Replace(daemonSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	waitFor(t, "the edit", func() bool { return d.Status().Revision != first })
	waitFor(t, "the edit's pass", func() bool { return d.Status().Applying == 2 })
	if st := d.Status(); st.Repairs != 0 {
		t.Errorf("after an edit: repairs %d", st.Repairs)
	}
	if drv.writes() == n {
		t.Error("the edit changed nothing")
	}
	good := d.Status().Revision
	// An invalid edit keeps the last good spec and says why.
	passes := d.Status().Passes
	src.set(strings.Replace(daemonSpec, "interface:", "interfase:", 1))
	waitFor(t, "the invalid edit", func() bool { st := d.Status(); return st.SpecError != "" && st.Passes > passes })
	st = d.Status()
	if st.Revision != good || !strings.Contains(st.SpecError, `unknown field "interfase"`) || st.RejectedRev == "" {
		t.Errorf("invalid edit: %+v", st)
	}
	// Drift is repaired on a trigger, and counted as a repair.
	drv.drift()
	d.Trigger("kernel")
	waitFor(t, "the repair", func() bool { return d.Status().Repairs == 1 })
	// A periodic or triggered pass on a converged state writes nothing.
	n = drv.writes()
	passes = d.Status().Passes
	d.Trigger("periodic")
	waitFor(t, "a no-op pass", func() bool { return d.Status().Passes > passes })
	if drv.writes() != n {
		t.Error("a no-op pass wrote")
	}
}

func TestDaemonRetriesAFailedPass(t *testing.T) {
	var log []string
	mem := newMem("any", &log)
	drv := &lockedDriver{mem: mem}
	// The kernel refuses the default route; the pass fails and is retried.
	drv.mu.Lock()
	mem.refuse = "route[main 0.0.0.0/0 metric 10]"
	drv.mu.Unlock()
	src := &memSource{data: daemonSpec}
	d := &Daemon{Engine: &Engine{Drivers: []Driver{drv}}, Source: src, Interval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	waitFor(t, "a failed pass", func() bool { return d.Status().Failures >= 1 })
	st := d.Status()
	if !strings.Contains(st.LastPass.Error, "route[main 0.0.0.0/0 metric 10]") {
		t.Errorf("last pass error %q does not name the object", st.LastPass.Error)
	}
	failed := false
	for _, o := range st.Objects {
		if o.Address == "route[main 0.0.0.0/0 metric 10]" && o.State == "error" {
			failed = true
		}
	}
	if !failed {
		t.Errorf("the refused object's status is not error: %+v", st.Objects)
	}
	drv.mu.Lock()
	mem.refuse = ""
	drv.mu.Unlock()
	waitFor(t, "the retry to converge", func() bool { return d.Status().LastPass.Result == ResultConverged })
}

const trialSpec = `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: d}
spec:
  management:
    probes: [{tcp: "192.168.50.10:22"}]
  lan:
    interface: lan0
    addresses: [192.168.50.1/24]
  uplinks:
  - name: isp1
    interface: wan1
    ipv4: {static: {address: 10.101.0.2/24, gateway: 10.101.0.1}}
`

// has reports whether the fake kernel holds an object.
func (l *lockedDriver) has(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.mem.live[addr]
	return ok
}

func newTrialDaemon(t *testing.T, data string) (*Daemon, *lockedDriver, *memSource) {
	var log []string
	drv := &lockedDriver{mem: newMem("any", &log)}
	src := &memSource{data: data}
	d := &Daemon{
		Engine: &Engine{Drivers: []Driver{drv}}, Source: src, Interval: time.Hour,
		ProbeInterval: 20 * time.Millisecond, ProbeWindow: 300 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		StateDir: t.TempDir(),
		// The management host answers while the LAN address is there.
		Prober: func(ctx context.Context, tg Target) error {
			if drv.has("address[lan0 192.168.50.1/24]") {
				return nil
			}
			return errors.New("no answer")
		},
	}
	return d, drv, src
}

func TestTrialRevertsAChangeThatCutsAProbe(t *testing.T) {
	d, drv, src := newTrialDaemon(t, trialSpec)
	cancel := start(t, d)
	st := waitStatus(t, d, "the first pass", func(st Status) bool { return st.LastPass != nil && st.LastPass.Result == ResultConverged })
	good := st.Revision
	if st.Trial != nil {
		t.Fatal("the first revision is not a trial: there is nothing to go back to")
	}
	cut := strings.Replace(trialSpec, "192.168.50.1/24", "192.168.60.1/24", 1)
	src.set(cut)
	st = waitStatus(t, d, "the revert", func(st Status) bool { return len(st.Quarantined) == 1 })
	if q := st.Quarantined[0]; q.Revision == good || !strings.Contains(q.Reason, "did not answer within") {
		t.Errorf("quarantine: %+v", q)
	}
	waitStatus(t, d, "the old state back", func(st Status) bool {
		return st.Revision == good && st.LastPass.Result == ResultConverged && slices.Contains(st.LastPass.Triggers, "revert")
	})
	if !drv.has("address[lan0 192.168.50.1/24]") || drv.has("address[lan0 192.168.60.1/24]") {
		t.Fatal("the revert did not restore the LAN address")
	}
	// The quarantined content is not applied again, even on a reload.
	d.Trigger("reload")
	time.Sleep(100 * time.Millisecond)
	if drv.has("address[lan0 192.168.60.1/24]") {
		t.Fatal("a quarantined revision was applied again")
	}
	if st := d.Status(); !strings.Contains(st.SpecError, "quarantined") {
		t.Errorf("status does not say the revision is quarantined: %q", st.SpecError)
	}
	// A restarted daemon remembers the quarantine and the last good spec.
	cancel()
	d2 := &Daemon{Engine: d.Engine, Source: src, Interval: time.Hour, StateDir: d.StateDir, Prober: d.Prober,
		ProbeInterval: d.ProbeInterval, ProbeWindow: d.ProbeWindow, ProbeTimeout: d.ProbeTimeout}
	start(t, d2)
	st = waitStatus(t, d2, "the restarted daemon's pass", func(st Status) bool { return st.LastPass != nil })
	if st.Revision != good || len(st.Quarantined) != 1 || drv.has("address[lan0 192.168.60.1/24]") {
		t.Errorf("after a restart: revision %s (good %s), quarantined %v", st.Revision, good, st.Quarantined)
	}
	// A different change is tried again.
	src.set(strings.Replace(trialSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	waitStatus(t, d2, "a new good revision", func(st Status) bool {
		return st.Revision != good && st.Trial == nil && st.LastPass.Result == ResultConverged
	})
}

func TestTrialNeedsConfirmation(t *testing.T) {
	d, drv, src := newTrialDaemon(t, trialSpec)
	d.ConfirmWithin = 300 * time.Millisecond
	start(t, d)
	st := waitStatus(t, d, "the first pass", func(st Status) bool { return st.LastPass != nil && st.LastPass.Result == ResultConverged })
	good := st.Revision
	if _, err := d.Confirm(); !errors.Is(err, ErrNothingToConfirm) {
		t.Errorf("Confirm with nothing pending: %v", err)
	}
	// Not confirmed: reverted.
	src.set(strings.Replace(trialSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	waitStatus(t, d, "the trial", func(st Status) bool { return st.Trial != nil })
	waitStatus(t, d, "the revert", func(st Status) bool { return len(st.Quarantined) == 1 && st.Revision == good })
	waitStatus(t, d, "the old state", func(st Status) bool {
		return st.LastPass.Result == ResultConverged && drv.has("address[wan1 10.101.0.2/24]")
	})
	if drv.has("address[wan1 10.101.0.3/24]") {
		t.Fatal("the unconfirmed change stayed")
	}
	// Confirmed: kept.
	src.set(strings.Replace(trialSpec, "10.101.0.2/24", "10.101.0.4/24", 1))
	waitStatus(t, d, "the second trial", func(st Status) bool { return st.Trial != nil })
	if _, err := d.Confirm(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	st = d.Status()
	if st.Trial != nil || len(st.Quarantined) != 1 || !drv.has("address[wan1 10.101.0.4/24]") {
		t.Errorf("after confirm: trial %v, quarantined %v", st.Trial, st.Quarantined)
	}
}

func waitStatus(t *testing.T, d *Daemon, what string, cond func(Status) bool) Status {
	t.Helper()
	var st Status
	waitFor(t, what, func() bool { st = d.Status(); return cond(st) })
	return st
}

// start runs d until the test ends (or the returned stop is called), and
// waits for it to return.
func start(t *testing.T, d *Daemon) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// testSession is a session that publishes a fact and needs one object
// while it runs.
type testSession struct {
	mu      sync.Mutex
	running bool
	hub     *FactsHub
}

func (s *testSession) Name() string { return "test" }
func (s *testSession) Start(ctx context.Context, _ any, hub *FactsHub) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running, s.hub = true, hub
	return nil
}
func (s *testSession) Update(any) error { return nil }
func (s *testSession) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = false
	return nil
}
func (s *testSession) Status() SessionStatus { return SessionStatus{Name: "test", State: "running"} }
func (s *testSession) Resources() []plan.Resource {
	return []plan.Resource{item{"listener", "redirect", "to-braid"}}
}

func TestSessionsFactsAndWithdrawal(t *testing.T) {
	var log []string
	drv := &lockedDriver{mem: newMem("any", &log)}
	hub, err := NewFactsHub(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sess := &testSession{}
	src := &memSource{data: strings.Replace(daemonSpec, "  uplinks:\n", "  uplinks:\n  - name: isp2\n    interface: wan2\n    ipv4: {static: {address: 10.102.0.2/24, gateway: 10.102.0.1}}\n", 1)}
	d := &Daemon{Engine: &Engine{Drivers: []Driver{drv}}, Source: src, Interval: time.Hour, Facts: hub, Sessions: []Session{sess}}
	stop := start(t, d)
	waitStatus(t, d, "the first pass", func(st Status) bool { return st.LastPass != nil && st.LastPass.Result == ResultConverged })
	if !drv.has("listener[redirect]") {
		t.Fatal("the session's resource was not converged")
	}
	isp2 := "route[main 0.0.0.0/0 metric 10]" // isp2 is first, priority 10
	if !drv.has(isp2) {
		t.Fatalf("no default route via isp2")
	}
	// A session reports isp2 down: a facts pass takes its default route out.
	no := false
	if err := hub.Update(func(f *Facts) { f.Uplinks = map[string]UplinkFacts{"isp2": {Healthy: &no}} }); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, d, "the facts pass", func(st Status) bool { return st.Facts.Version == 1 && !drv.has(isp2) })
	if st.Repairs != 0 {
		t.Errorf("a facts pass counted as a drift repair")
	}
	// The facts are persisted with their version.
	persisted, err := LoadFacts(filepath.Dir(hub.path))
	if err != nil || persisted.Version != 1 || !persisted.down("isp2") {
		t.Errorf("persisted facts: %+v %v", persisted, err)
	}
	// An update that changes nothing is not a new version.
	hub.Update(func(f *Facts) { f.Uplinks = map[string]UplinkFacts{"isp2": {Healthy: &no}} })
	if hub.Facts().Version != 1 {
		t.Error("a no-op update bumped the version")
	}
	// Stopping withdraws what needs the process, and only that.
	stop()
	if drv.has("listener[redirect]") {
		t.Error("the session's resource survived the daemon")
	}
	if !drv.has("route[main 0.0.0.0/0 metric 20]") || !drv.has("address[wan1 10.101.0.2/24]") {
		t.Error("stopping removed routing state that works without braid")
	}
	if sess.running {
		t.Error("the session was not stopped")
	}
}

// failingSource fails its loads while broken is set.
type failingSource struct {
	memSource
	mu2    sync.Mutex
	broken bool
}

func (f *failingSource) Load(ctx context.Context) (source.Revision, error) {
	f.mu2.Lock()
	broken := f.broken
	f.mu2.Unlock()
	if broken {
		return source.Revision{}, errors.New("repository not found")
	}
	return f.memSource.Load(ctx)
}

func (f *failingSource) setBroken(b bool) {
	f.mu2.Lock()
	f.broken = b
	f.mu2.Unlock()
}

// An unreachable source never stops the last good spec from being
// converged (after a reboot, the repository may be reachable only through
// the uplinks braid configures), and a change seen while it was
// unreachable is read once it is back, even if the source does not say so
// again.
func TestDaemonUnreachableSource(t *testing.T) {
	dir := t.TempDir()
	var log []string
	drv := &lockedDriver{mem: newMem("any", &log)}
	src := &failingSource{memSource: memSource{data: daemonSpec}}
	d := &Daemon{Engine: &Engine{Drivers: []Driver{drv}}, Source: src, Interval: time.Hour, StateDir: dir}
	stop := start(t, d)
	good := waitStatus(t, d, "the first pass", func(st Status) bool { return st.LastPass != nil && st.LastPass.Result == ResultConverged }).Revision
	stop()
	// "Reboot": the kernel state is gone and the source is unreachable.
	drv.mu.Lock()
	drv.mem.live = map[string]plan.Resource{}
	drv.mu.Unlock()
	src.setBroken(true)
	d2 := &Daemon{Engine: d.Engine, Source: src, Interval: time.Hour, StateDir: dir}
	start(t, d2)
	st := waitStatus(t, d2, "the last good spec converged", func(st Status) bool { return drv.has("address[wan1 10.101.0.2/24]") })
	if st.Revision != good || !strings.Contains(st.SpecError, "repository not found") {
		t.Errorf("status: revision %s (good %s), spec error %q", st.Revision, good, st.SpecError)
	}
	// A change made while unreachable is read when it is back: the failed
	// load is retried without a new notification.
	src.mu.Lock()
	src.data = strings.Replace(daemonSpec, "10.101.0.2/24", "10.101.0.7/24", 1)
	src.mu.Unlock()
	src.setBroken(false)
	st = waitStatus(t, d2, "the change", func(st Status) bool { return drv.has("address[wan1 10.101.0.7/24]") && st.SpecError == "" })
	if st.Revision == good {
		t.Error("the revision did not move")
	}
}
