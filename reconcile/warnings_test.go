package reconcile_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/compile"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
)

// switchChecker warns while on is set.
type switchChecker struct {
	mu sync.Mutex
	on bool
}

func (c *switchChecker) set(on bool) { c.mu.Lock(); c.on = on; c.mu.Unlock() }

func (c *switchChecker) Check(_ context.Context, d reconcile.Desired) []plan.Warning {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on || len(d.Intents) == 0 {
		return nil
	}
	return []plan.Warning{{Kind: plan.WarnForeignDrop, Key: "lan-isp1|ip filter FORWARD|policy drop", Message: "table ip filter drops it"}}
}

// lockedBuffer is a log the daemon writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestDaemonWarnings: a checker's warning shows in the status while it
// holds, is logged once when it appears and once when it goes, and is
// never a failed pass or a change.
func TestDaemonWarnings(t *testing.T) {
	drv := reconcile.NewLockedDriver()
	check := &switchChecker{on: true}
	var log lockedBuffer
	d := &reconcile.Daemon{Compile: compile.Compile, Source: reconcile.NewMemSource(daemonSpec), Interval: time.Hour,
		Engine: &reconcile.Engine{Drivers: []reconcile.Driver{drv}, Checkers: []reconcile.Checker{check}},
		Log:    slog.New(slog.NewTextHandler(&log, nil))}
	start(t, d)
	st := waitStatus(t, d, "the first pass", func(st reconcile.Status) bool { return st.Passes >= 1 })
	if len(st.PlanWarnings) != 1 || st.LastPass.Result != reconcile.ResultConverged || st.Failures != 0 {
		t.Fatalf("first pass: warnings %v, %+v", st.PlanWarnings, st.LastPass)
	}
	for range 2 {
		passes := d.Status().Passes
		d.Trigger("periodic")
		waitStatus(t, d, "another pass", func(st reconcile.Status) bool { return st.Passes > passes })
	}
	if n := strings.Count(log.String(), "table ip filter drops it"); n != 1 {
		t.Errorf("the warning was logged %d times over three passes:\n%s", n, log.String())
	}
	check.set(false)
	passes := d.Status().Passes
	d.Trigger("periodic")
	st = waitStatus(t, d, "a pass without it", func(st reconcile.Status) bool { return st.Passes > passes })
	if len(st.PlanWarnings) != 0 {
		t.Errorf("the warning stays in the status: %v", st.PlanWarnings)
	}
	if !strings.Contains(log.String(), `msg="no longer defeated" warning="lan-isp1|ip filter FORWARD|policy drop"`) {
		t.Errorf("its going was not logged:\n%s", log.String())
	}
}
