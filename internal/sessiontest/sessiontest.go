// Package sessiontest runs one protocol session in a test as the
// supervisor runs it: in a network namespace, with an Env writing to a
// facts hub, its state recorded for the test to read, and stopped with a
// cause (braid stopping, the session leaving the spec).
package sessiontest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/session"
)

// StopWithin bounds how long a session may take to stop.
const StopWithin = 60 * time.Second

// Run is one run of a session.
type Run struct {
	cancel context.CancelCauseFunc
	done   chan error

	mu     sync.Mutex
	state  session.State
	detail string
}

// Start runs run in namespace ns, as the session owner ("KIND/NAME")
// writing to hub, until Stop; the test's end stops it as braid's
// shutdown does.
func Start(t testing.TB, ns, owner string, hub *facts.Hub, run func(ctx context.Context, env *session.Env) error) *Run {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &Run{cancel: cancel, done: make(chan error, 1)}
	env := session.NewEnv(owner, nstest.Logger(t), hub, func(st session.State, d string) {
		r.mu.Lock()
		r.state, r.detail = st, d
		r.mu.Unlock()
	})
	go func() {
		r.done <- netns.Do(ns, func() error { return run(ctx, env) })
	}()
	t.Cleanup(func() { r.Stop(t, session.ErrShutdown) })
	return r
}

// Stop ends the run with cause and waits for it; the session must return
// nil. Stopping a stopped run does nothing.
func (r *Run) Stop(t testing.TB, cause error) {
	t.Helper()
	r.cancel(cause)
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("the session returned %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(StopWithin):
		t.Fatal("the session did not stop")
	}
}

// Status is the session's last state and detail.
func (r *Run) Status() (session.State, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state, r.detail
}

// WaitFor polls cond until it holds, failing the test after within.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
