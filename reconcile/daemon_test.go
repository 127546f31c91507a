package reconcile_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/compile"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/health"
)

const daemonSpec = `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: d}
spec:
  uplinks:
  - name: isp1
    interface: wan1
    ipv4: {static: {address: 10.101.0.2/24, gateway: 10.101.0.1}}
`

func TestDaemonConvergesAndKeepsTheLastGoodSpec(t *testing.T) {
	drv := reconcile.NewLockedDriver()
	src := reconcile.NewMemSource(daemonSpec)
	d := &reconcile.Daemon{Compile: compile.Compile, Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}}, Source: src, Interval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	reconcile.WaitFor(t, "the first pass", func() bool { return d.Status().Passes >= 1 })
	st := d.Status()
	if st.LastPass.Result != reconcile.ResultConverged || st.Applying != 1 || st.Revision == "" {
		t.Fatalf("first pass: %+v %+v", st, st.LastPass)
	}
	first := st.Revision
	n := drv.Writes()
	// An edit is one more pass that applies it.
	src.Set(strings.Replace(daemonSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	reconcile.WaitFor(t, "the edit", func() bool { return d.Status().Revision != first })
	reconcile.WaitFor(t, "the edit's pass", func() bool { return d.Status().Applying == 2 })
	if st := d.Status(); st.Repairs != 0 {
		t.Errorf("after an edit: repairs %d", st.Repairs)
	}
	if drv.Writes() == n {
		t.Error("the edit changed nothing")
	}
	good := d.Status().Revision
	// An invalid edit keeps the last good spec and says why.
	passes := d.Status().Passes
	src.Set(strings.Replace(daemonSpec, "interface:", "interfase:", 1))
	reconcile.WaitFor(t, "the invalid edit", func() bool { st := d.Status(); return st.SpecError != "" && st.Passes > passes })
	st = d.Status()
	if st.Revision != good || !strings.Contains(st.SpecError, `unknown field "interfase"`) || st.RejectedRev == "" {
		t.Errorf("invalid edit: %+v", st)
	}
	// Drift is repaired on a trigger, and counted as a repair.
	drv.Drift()
	d.Trigger("kernel")
	reconcile.WaitFor(t, "the repair", func() bool { return d.Status().Repairs == 1 })
	// A periodic or triggered pass on a converged state writes nothing.
	n = drv.Writes()
	passes = d.Status().Passes
	d.Trigger("periodic")
	reconcile.WaitFor(t, "a no-op pass", func() bool { return d.Status().Passes > passes })
	if drv.Writes() != n {
		t.Error("a no-op pass wrote")
	}
}

// fakeAfter stands for time.After in the daemon: it records each wait
// asked for and fires only when the test says.
type fakeAfter struct {
	mu    sync.Mutex
	waits []time.Duration
	chans []chan time.Time
}

func (f *fakeAfter) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	f.waits = append(f.waits, d)
	f.chans = append(f.chans, ch)
	return ch
}

// fire ends the n-th wait (0-based) once the daemon has asked for it, and
// returns its duration.
func (f *fakeAfter) fire(t *testing.T, n int) time.Duration {
	t.Helper()
	reconcile.WaitFor(t, "the daemon's wait", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.waits) > n
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chans[n] <- time.Time{}
	return f.waits[n]
}

// A failed pass never stops the daemon: it is retried after 1 s, then 2,
// 4, ... up to a minute, each retry failing the same way, and the first
// one that succeeds converges.
func TestDaemonRetriesAFailedPassWithBackoff(t *testing.T) {
	drv := reconcile.NewLockedDriver()
	// The kernel refuses the default route; the pass fails and is retried.
	drv.Refuse("route[main 0.0.0.0/0 metric 10]")
	src := reconcile.NewMemSource(daemonSpec)
	after := &fakeAfter{}
	d := &reconcile.Daemon{Compile: compile.Compile, Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}}, Source: src, Interval: time.Hour, After: after.After}
	start(t, d)
	reconcile.WaitFor(t, "a failed pass", func() bool { return d.Status().Failures >= 1 })
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
	var got []time.Duration
	for n := range 8 {
		got = append(got, after.fire(t, n))
		reconcile.WaitFor(t, "the retry", func() bool { return d.Status().Failures >= uint64(n+2) })
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	if !slices.Equal(got, want) {
		t.Fatalf("retry waits %v, want %v", got, want)
	}
	drv.Refuse("")
	after.fire(t, 8)
	reconcile.WaitFor(t, "the retry to converge", func() bool { return d.Status().LastPass.Result == reconcile.ResultConverged })
	if st := d.Status(); st.Failures != 9 || st.Passes != 10 {
		t.Errorf("after 9 failures and a success: %d passes, %d failed", st.Passes, st.Failures)
	}
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

// fakeClock is the daemon's clock in trial tests: time moves only when the
// test says, so a trial is seen before its deadline however busy the
// machine is.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTrialDaemon(t *testing.T, data string) (*reconcile.Daemon, *reconcile.LockedDriver, *reconcile.MemSource, *fakeClock) {
	drv := reconcile.NewLockedDriver()
	src := reconcile.NewMemSource(data)
	clock := newFakeClock()
	d := &reconcile.Daemon{Compile: compile.Compile,
		Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}}, Source: src, Interval: time.Hour,
		ProbeInterval: 20 * time.Millisecond, ProbeWindow: time.Minute, ProbeTimeout: time.Second,
		StateDir: t.TempDir(), Now: clock.Now,
		// The management host answers while the LAN address is there.
		Prober: func(ctx context.Context, tg probe.Target) error {
			if drv.Has("address[lan0 192.168.50.1/24]") {
				return nil
			}
			return errors.New("no answer")
		},
	}
	return d, drv, src, clock
}

func TestTrialRevertsAChangeThatCutsAProbe(t *testing.T) {
	d, drv, src, clock := newTrialDaemon(t, trialSpec)
	cancel := start(t, d)
	st := waitStatus(t, d, "the first pass", func(st reconcile.Status) bool {
		return st.LastPass != nil && st.LastPass.Result == reconcile.ResultConverged
	})
	good := st.Revision
	if st.Trial != nil {
		t.Fatal("the first revision is not a trial: there is nothing to go back to")
	}
	cut := strings.Replace(trialSpec, "192.168.50.1/24", "192.168.60.1/24", 1)
	src.Set(cut)
	st = waitStatus(t, d, "the trial, waiting for the probe", func(st reconcile.Status) bool {
		return st.Trial != nil && len(st.Trial.Waiting) == 1 && drv.Has("address[lan0 192.168.60.1/24]")
	})
	if len(st.Quarantined) != 0 {
		t.Fatal("reverted before the probe window ended")
	}
	clock.Advance(time.Minute + time.Second)
	st = waitStatus(t, d, "the revert", func(st reconcile.Status) bool { return len(st.Quarantined) == 1 })
	if q := st.Quarantined[0]; q.Revision == good || !strings.Contains(q.Reason, "did not answer within") {
		t.Errorf("quarantine: %+v", q)
	}
	waitStatus(t, d, "the old state back", func(st reconcile.Status) bool {
		return st.Revision == good && st.LastPass.Result == reconcile.ResultConverged && slices.Contains(st.LastPass.Triggers, "revert")
	})
	if !drv.Has("address[lan0 192.168.50.1/24]") || drv.Has("address[lan0 192.168.60.1/24]") {
		t.Fatal("the revert did not restore the LAN address")
	}
	// The quarantined content is not applied again, even when a reload
	// reads it again.
	loads, passes := src.Loads(), d.Status().Passes
	d.Trigger("reload")
	waitStatus(t, d, "the reload pass", func(st reconcile.Status) bool {
		return st.Passes > passes && slices.Contains(st.LastPass.Triggers, "reload")
	})
	if src.Loads() == loads {
		t.Error("the reload did not read the spec")
	}
	if drv.Has("address[lan0 192.168.60.1/24]") {
		t.Fatal("a quarantined revision was applied again")
	}
	// A restarted daemon remembers the quarantine and the last good spec.
	cancel()
	d2 := &reconcile.Daemon{Compile: compile.Compile, Engine: d.Engine, Source: src, Interval: time.Hour, StateDir: d.StateDir, Prober: d.Prober,
		ProbeInterval: d.ProbeInterval, ProbeWindow: d.ProbeWindow, ProbeTimeout: d.ProbeTimeout, Now: clock.Now}
	start(t, d2)
	st = waitStatus(t, d2, "the restarted daemon's pass", func(st reconcile.Status) bool { return st.LastPass != nil })
	if st.Revision != good || len(st.Quarantined) != 1 || drv.Has("address[lan0 192.168.60.1/24]") {
		t.Errorf("after a restart: revision %s (good %s), quarantined %v", st.Revision, good, st.Quarantined)
	}
	if !strings.Contains(st.SpecError, "quarantined") {
		t.Errorf("the restarted daemon does not say the revision is quarantined: %q", st.SpecError)
	}
	// A different change is tried again.
	src.Set(strings.Replace(trialSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	waitStatus(t, d2, "a new good revision", func(st reconcile.Status) bool {
		return st.Revision != good && st.Trial == nil && st.LastPass.Result == reconcile.ResultConverged
	})
}

func TestTrialNeedsConfirmation(t *testing.T) {
	d, drv, src, clock := newTrialDaemon(t, trialSpec)
	d.ConfirmWithin = time.Hour
	start(t, d)
	st := waitStatus(t, d, "the first pass", func(st reconcile.Status) bool {
		return st.LastPass != nil && st.LastPass.Result == reconcile.ResultConverged
	})
	good := st.Revision
	if _, err := d.Confirm(); !errors.Is(err, reconcile.ErrNothingToConfirm) {
		t.Errorf("Confirm with nothing pending: %v", err)
	}
	// Not confirmed: reverted once the deadline passes, not before.
	src.Set(strings.Replace(trialSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	waitStatus(t, d, "the trial applied", func(st reconcile.Status) bool {
		return st.Trial != nil && drv.Has("address[wan1 10.101.0.3/24]")
	})
	clock.Advance(time.Hour + time.Second)
	waitStatus(t, d, "the revert", func(st reconcile.Status) bool { return len(st.Quarantined) == 1 && st.Revision == good })
	waitStatus(t, d, "the old state", func(st reconcile.Status) bool {
		return st.LastPass.Result == reconcile.ResultConverged && drv.Has("address[wan1 10.101.0.2/24]")
	})
	if drv.Has("address[wan1 10.101.0.3/24]") {
		t.Fatal("the unconfirmed change stayed")
	}
	// Confirmed: kept, past its deadline too.
	src.Set(strings.Replace(trialSpec, "10.101.0.2/24", "10.101.0.4/24", 1))
	waitStatus(t, d, "the second trial", func(st reconcile.Status) bool { return st.Trial != nil && !st.Trial.Confirmed })
	if _, err := d.Confirm(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, "the acceptance", func(st reconcile.Status) bool { return st.Trial == nil })
	clock.Advance(2 * time.Hour)
	passes := d.Status().Passes
	d.Trigger("periodic")
	st = waitStatus(t, d, "a pass after the deadline", func(st reconcile.Status) bool { return st.Passes > passes })
	if len(st.Quarantined) != 1 || !drv.Has("address[wan1 10.101.0.4/24]") {
		t.Errorf("after confirm: trial %v, quarantined %v", st.Trial, st.Quarantined)
	}
}

func waitStatus(t *testing.T, d *reconcile.Daemon, what string, cond func(reconcile.Status) bool) reconcile.Status {
	t.Helper()
	var st reconcile.Status
	reconcile.WaitFor(t, what, func() bool { st = d.Status(); return cond(st) })
	return st
}

// start runs d until the test ends (or the returned stop is called), and
// waits for it to return.
func start(t *testing.T, d *reconcile.Daemon) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// healthSession is a stand-in health tracker: it reports the verdict the
// test sets, and says it runs.
type healthSession struct {
	verdict chan bool
	updates chan health.Config
}

func (h *healthSession) Run(ctx context.Context, cfg health.Config, env *session.Env) error {
	env.SetState(session.Running, "tracking "+cfg.Uplink)
	for {
		select {
		case <-ctx.Done():
			return nil
		case v := <-h.verdict:
			if err := env.Publish(facts.Fact{Health: &facts.Health{Uplink: cfg.Uplink, Healthy: v}, Process: true}); err != nil {
				return err
			}
		}
	}
}

func (h *healthSession) Update(cfg health.Config) error {
	h.updates <- cfg
	return nil
}

// A session's fact turns into a kernel object and back; a process-bound
// object lives while its session runs; stopping the daemon withdraws it and
// nothing else.
func TestSessionsFactsAndWithdrawal(t *testing.T) {
	drv := reconcile.NewLockedDriver()
	hub, err := facts.Open(facts.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	hs := &healthSession{verdict: make(chan bool), updates: make(chan health.Config, 10)}
	reg := &session.Registry{}
	session.Register(reg, health.Kind, func() session.Session[health.Config] { return hs })
	spec := strings.Replace(daemonSpec, "  uplinks:\n", "  uplinks:\n  - name: isp2\n    interface: wan2\n    ipv4: {static: {address: 10.102.0.2/24, gateway: 10.102.0.1}}\n    health: {probes: [{icmp: 192.0.2.1}]}\n", 1)
	src := reconcile.NewMemSource(spec)
	// The health tracker of isp2 owns one process-bound object.
	withBound := func(doc *api.Document, f facts.Set) (reconcile.Desired, error) {
		d, err := compile.Compile(doc, f)
		d.Resources = append(d.Resources, plan.ProcessBound{Resource: reconcile.Item("listener", "redirect", "to-braid"), Owner: "health/isp2"},
			// Shared with a session that does not run: kept all the same.
			plan.ProcessBound{Resource: reconcile.Item("listener", "shared", "to-braid"), Owner: "dns/absent", Also: "health/isp2"},
			plan.ProcessBound{Resource: reconcile.Item("listener", "absent", "to-braid"), Owner: "dns/absent"})
		return d, err
	}
	d := &reconcile.Daemon{Compile: withBound, Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}}, Source: src, Interval: time.Hour,
		Facts: hub, Supervisor: &reconcile.Supervisor{Registry: reg, Facts: hub}}
	stop := start(t, d)
	st := waitStatus(t, d, "the session running and its object converged", func(st reconcile.Status) bool {
		return len(st.Sessions) == 1 && st.Sessions[0].State == session.Running && drv.Has("listener[redirect]") && drv.Has("listener[shared]")
	})
	if drv.Has("listener[absent]") {
		t.Error("an object bound to a session that does not run")
	}
	if st.Sessions[0].Address != "session[health/isp2]" {
		t.Errorf("sessions: %+v", st.Sessions)
	}
	isp2 := "route[main 0.0.0.0/0 metric 10]" // isp2 is first, priority 10
	if !drv.Has(isp2) {
		t.Fatalf("no default route via isp2")
	}
	// The session reports isp2 down: a facts pass takes its default route out.
	hs.verdict <- false
	st = waitStatus(t, d, "the facts pass", func(st reconcile.Status) bool { return st.Facts.Version >= 1 && !drv.Has(isp2) })
	if st.Repairs != 0 {
		t.Errorf("a facts pass counted as a drift repair")
	}
	if len(st.Facts.Entries) != 1 || st.Facts.Entries[0].Owner != "health/isp2" || !st.Facts.Entries[0].Process {
		t.Errorf("status facts: %+v", st.Facts.Entries)
	}
	// And back.
	hs.verdict <- true
	waitStatus(t, d, "isp2 back", func(st reconcile.Status) bool { return drv.Has(isp2) })
	// A change of the spec's health section reconfigures the session in place.
	src.Set(strings.Replace(spec, "192.0.2.1", "192.0.2.2", 1))
	select {
	case cfg := <-hs.updates:
		if cfg.Probes[0].ICMP != "192.0.2.2" {
			t.Errorf("update: %+v", cfg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session was not reconfigured")
	}
	// Stopping withdraws what needs the process, and only that.
	stop()
	if drv.Has("listener[redirect]") || drv.Has("listener[shared]") {
		t.Error("the session's objects survived the daemon")
	}
	if !drv.Has("route[main 0.0.0.0/0 metric 20]") || !drv.Has("address[wan1 10.101.0.2/24]") {
		t.Error("stopping removed routing state that works without braid")
	}
}

// An unreachable source never stops the last good spec from being
// converged (after a reboot, the repository may be reachable only through
// the uplinks braid configures), and a change seen while it was
// unreachable is read once it is back, even if the source does not say so
// again.
func TestDaemonUnreachableSource(t *testing.T) {
	dir := t.TempDir()
	drv := reconcile.NewLockedDriver()
	src := &reconcile.FailingSource{MemSource: *reconcile.NewMemSource(daemonSpec)}
	d := &reconcile.Daemon{Compile: compile.Compile, Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}}, Source: src, Interval: time.Hour, StateDir: dir}
	stop := start(t, d)
	good := waitStatus(t, d, "the first pass", func(st reconcile.Status) bool {
		return st.LastPass != nil && st.LastPass.Result == reconcile.ResultConverged
	}).Revision
	stop()
	// "Reboot": the kernel state is gone and the source is unreachable.
	drv.Wipe()
	src.SetBroken(true)
	d2 := &reconcile.Daemon{Compile: compile.Compile, Engine: d.Engine, Source: src, Interval: time.Hour, StateDir: dir}
	start(t, d2)
	st := waitStatus(t, d2, "the last good spec converged", func(st reconcile.Status) bool { return drv.Has("address[wan1 10.101.0.2/24]") })
	if st.Revision != good || !strings.Contains(st.SpecError, "repository not found") {
		t.Errorf("status: revision %s (good %s), spec error %q", st.Revision, good, st.SpecError)
	}
	// A change made while unreachable is read when it is back: the failed
	// load is retried without a new notification.
	src.SetQuietly(strings.Replace(daemonSpec, "10.101.0.2/24", "10.101.0.7/24", 1))
	src.SetBroken(false)
	st = waitStatus(t, d2, "the change", func(st reconcile.Status) bool { return drv.Has("address[wan1 10.101.0.7/24]") && st.SpecError == "" })
	if st.Revision == good {
		t.Error("the revision did not move")
	}
}

// A last good spec that cannot be read leaves no fallback: the daemon
// converges what it reads, and says so until it has saved a new one.
func TestDaemonUnreadableLastGoodSpec(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":      `{"revision": "abc", "name": "x.yaml", "spec": "YXBp`,
		"spec not valid": `{"revision": "abc", "name": "x.yaml", "spec": "` + base64.StdEncoding.EncodeToString([]byte("kind: Nope\n")) + `"}`,
		"empty":          ``,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "last-good.json"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			drv := reconcile.NewLockedDriver()
			src := &reconcile.FailingSource{MemSource: *reconcile.NewMemSource(daemonSpec)}
			src.SetBroken(true)
			d := &reconcile.Daemon{Compile: compile.Compile, Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}}, Source: src, Interval: time.Hour, StateDir: dir}
			start(t, d)
			st := waitStatus(t, d, "a failed first pass", func(st reconcile.Status) bool { return st.Failures >= 1 })
			if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "last-good.json is unreadable") || !strings.Contains(st.Warnings[0], "no last good spec to fall back on") {
				t.Errorf("warnings: %q", st.Warnings)
			}
			if st.Revision != "" || drv.Has("address[wan1 10.101.0.2/24]") {
				t.Errorf("something was converged without a spec: revision %q", st.Revision)
			}
			// The source comes back: its spec is applied and saved, and the
			// warning goes.
			src.SetBroken(false)
			waitStatus(t, d, "the spec applied", func(st reconcile.Status) bool {
				return st.LastPass.Result == reconcile.ResultConverged && len(st.Warnings) == 0 && drv.Has("address[wan1 10.101.0.2/24]")
			})
		})
	}
}
