package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// testConfig is the configuration of the supervisor's test sessions.
type testConfig struct {
	Value  string
	Secret *api.Secret
}

func (c testConfig) Fields() []plan.Field {
	fs := session.Fields("value", c.Value)
	if c.Secret != nil {
		fs = append(fs, session.SecretField("password", c.Secret))
	}
	return fs
}

func (c testConfig) Secrets() []*api.Secret {
	if c.Secret == nil {
		return nil
	}
	return []*api.Secret{c.Secret}
}

// testSession does what its orders say and records what happened to it.
type testSession struct {
	mu      sync.Mutex
	starts  int
	updates []string
	runs    chan testConfig
	// behave decides what a run does: nil runs until cancelled.
	behave func(ctx context.Context, cfg testConfig, env *session.Env) error
	// inPlace: Update succeeds; otherwise it asks for a restart.
	inPlace bool
}

func (s *testSession) Run(ctx context.Context, cfg testConfig, env *session.Env) error {
	s.mu.Lock()
	s.starts++
	behave := s.behave
	s.mu.Unlock()
	if s.runs != nil {
		s.runs <- cfg
	}
	if behave != nil {
		return behave(ctx, cfg, env)
	}
	env.SetState(session.Running, "")
	<-ctx.Done()
	return nil
}

func (s *testSession) Update(cfg testConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inPlace {
		return session.ErrRestart
	}
	s.updates = append(s.updates, cfg.Value)
	return nil
}

func (s *testSession) counts() (starts, updates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts, len(s.updates)
}

func newTestSupervisor(t *testing.T, sess *testSession) (*Supervisor, *facts.Hub) {
	t.Helper()
	hub, err := facts.Open(facts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := &session.Registry{}
	session.Register(reg, "test", func() session.Session[testConfig] { return sess })
	sup := &Supervisor{Registry: reg, Facts: hub, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, StopTimeout: 5 * time.Second}
	t.Cleanup(func() { sup.StopAll(); hub.Close() })
	return sup, hub
}

func spec(value string) session.Spec {
	return session.Spec{Kind: "test", Name: "a", Config: testConfig{Value: value}}
}

func stateOf(sup *Supervisor, addr string) session.Status {
	for _, s := range sup.Status() {
		if s.Address == addr {
			return s
		}
	}
	return session.Status{}
}

func TestSupervisorStartsUpdatesAndStops(t *testing.T) {
	for _, inPlace := range []bool{true, false} {
		t.Run(map[bool]string{true: "in place", false: "by restart"}[inPlace], func(t *testing.T) {
			sess := &testSession{inPlace: inPlace, runs: make(chan testConfig, 10)}
			sup, hub := newTestSupervisor(t, sess)
			ctx := context.Background()
			changes := sup.Sync(ctx, []session.Spec{spec("one")})
			if len(changes) != 1 || changes[0].Action != plan.Create || changes[0].Address() != "session[test/a]" {
				t.Fatalf("first sync: %v", changes)
			}
			if cfg := <-sess.runs; cfg.Value != "one" {
				t.Fatalf("started with %q", cfg.Value)
			}
			WaitFor(t, "running", func() bool { return sup.Running("test/a") })
			// The same spec again: no change.
			if changes := sup.Sync(ctx, []session.Spec{spec("one")}); len(changes) != 0 {
				t.Errorf("a sync with the same spec changed %v", changes)
			}
			hub.Publish("test/a", []facts.Fact{{Health: &facts.Health{Uplink: "u"}}})
			changes = sup.Sync(ctx, []session.Spec{spec("two")})
			if len(changes) != 1 || changes[0].Action != plan.Update {
				t.Fatalf("second sync: %v", changes)
			}
			if inPlace {
				WaitFor(t, "the update", func() bool { _, u := sess.counts(); return u == 1 })
				if starts, _ := sess.counts(); starts != 1 {
					t.Errorf("an in-place update restarted the session (%d starts)", starts)
				}
			} else if cfg := <-sess.runs; cfg.Value != "two" {
				t.Errorf("restarted with %q, want two", cfg.Value)
			}
			if got := stateOf(sup, "session[test/a]").Config; len(got) != 1 || got[0].Value != "two" {
				t.Errorf("status config: %v", got)
			}
			// Gone from the spec: stopped, and its facts withdrawn.
			changes = sup.Sync(ctx, nil)
			if len(changes) != 1 || changes[0].Action != plan.Delete {
				t.Fatalf("third sync: %v", changes)
			}
			if len(sup.Status()) != 0 || sup.Running("test/a") {
				t.Error("the session is still there")
			}
			if _, ok := hub.Set().Slots["test/a"]; ok {
				t.Error("a stopped session's facts stayed")
			}
		})
	}
}

func TestSupervisorRestartsACrashedSessionWithBackoff(t *testing.T) {
	var mu sync.Mutex
	crashes := 0
	sess := &testSession{runs: make(chan testConfig, 100)}
	sess.behave = func(ctx context.Context, cfg testConfig, env *session.Env) error {
		mu.Lock()
		defer mu.Unlock()
		crashes++
		switch crashes {
		case 1:
			env.Publish(facts.Fact{Lease4: &facts.Lease4{Uplink: "u"}}, facts.Fact{Link: &facts.Link{For: "tunnel/t", Name: "t"}, Process: true})
			return errors.New("boom")
		case 2:
			panic("bad index")
		case 3:
			return nil // returning before being stopped is a crash too
		}
		env.SetState(session.Running, "")
		<-ctx.Done()
		return nil
	}
	sup, hub := newTestSupervisor(t, sess)
	sup.Sync(context.Background(), []session.Spec{spec("x")})
	WaitFor(t, "running after three crashes", func() bool { return sup.Running("test/a") })
	st := stateOf(sup, "session[test/a]")
	if st.Restarts != 3 || st.Panics != 1 || !strings.Contains(st.LastError, "ended by itself") || st.LastErrorAt.IsZero() {
		t.Errorf("status after three crashes: %+v", st)
	}
	// The crash withdrew what died with the run, and kept the lease.
	slot := hub.Set().Slots["test/a"]
	if len(slot.Facts) != 1 || slot.Facts[0].Lease4 == nil {
		t.Errorf("facts after the crash: %+v", slot.Facts)
	}
}

func TestNextBackoffDoublesUpToTheMaximum(t *testing.T) {
	lo, hi := time.Second, time.Minute
	var got []time.Duration
	b := time.Duration(0)
	for range 9 {
		b = nextBackoff(b, lo, hi)
		got = append(got, b)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoffs %v, want %v seconds", got, want)
		}
	}
}

func TestSupervisorRotatedSecretIsAChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "password")
	os.WriteFile(path, []byte("hunter2\n"), 0o600)
	sess := &testSession{inPlace: true}
	sup, _ := newTestSupervisor(t, sess)
	sp := session.Spec{Kind: "test", Name: "a", Config: testConfig{Value: "v", Secret: &api.Secret{File: path}}}
	sup.Sync(context.Background(), []session.Spec{sp})
	WaitFor(t, "running", func() bool { return sup.Running("test/a") })
	if changes := DiffSessions(ResolveSessions([]session.Spec{sp}), sup.Live()); len(changes) != 0 {
		t.Fatalf("unchanged secret: %v", changes)
	}
	os.WriteFile(path, []byte("correct horse\n"), 0o600)
	changes := DiffSessions(ResolveSessions([]session.Spec{sp}), sup.Live())
	if len(changes) != 1 || changes[0].Action != plan.Update {
		t.Fatalf("rotated secret: %v", changes)
	}
	p := &Plan{Sessions: changes}
	var b strings.Builder
	p.WriteText(&b, false)
	if !strings.Contains(b.String(), "~ session[test/a]  config: (sensitive) changed") || strings.Contains(b.String(), "horse") || strings.Contains(b.String(), "hunter2") {
		t.Errorf("plan of a rotated secret:\n%s", b.String())
	}
	sup.Sync(context.Background(), []session.Spec{sp})
	if _, updates := sess.counts(); updates != 1 {
		t.Errorf("the session was not given the rotated secret (%d updates)", updates)
	}
	for _, st := range sup.Status() {
		for _, f := range st.Config {
			if f.Name == "config" && f.Value != plan.Redacted {
				t.Errorf("status shows the secrets' hash: %v", f)
			}
		}
	}
}

func TestSupervisorWaitingAndUnavailable(t *testing.T) {
	sess := &testSession{runs: make(chan testConfig, 10)}
	sup, _ := newTestSupervisor(t, sess)
	waiting := spec("w")
	waiting.Wait = "link eth9"
	other := session.Spec{Kind: "nosuchkind", Name: "b", Config: testConfig{}}
	sup.Sync(context.Background(), []session.Spec{waiting, other})
	WaitFor(t, "waiting", func() bool { return stateOf(sup, "session[test/a]").State == session.Waiting })
	if st := stateOf(sup, "session[test/a]"); st.Detail != "link eth9" {
		t.Errorf("waiting detail %q", st.Detail)
	}
	if st := stateOf(sup, "session[nosuchkind/b]"); st.State != session.Unavailable {
		t.Errorf("a kind this build lacks: %+v", st)
	}
	if starts, _ := sess.counts(); starts != 0 {
		t.Error("a waiting session was started")
	}
	sup.Sync(context.Background(), []session.Spec{spec("w"), other})
	if cfg := <-sess.runs; cfg.Value != "w" {
		t.Errorf("started with %q", cfg.Value)
	}
	WaitFor(t, "running once the wait is over", func() bool { return sup.Running("test/a") })
}

func TestSupervisorStopIsBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	sess := &testSession{}
	sess.behave = func(ctx context.Context, cfg testConfig, env *session.Env) error {
		env.SetState(session.Running, "")
		<-release // ignores ctx: a stuck session
		return nil
	}
	sup, _ := newTestSupervisor(t, sess)
	sup.StopTimeout = 50 * time.Millisecond
	sup.Sync(context.Background(), []session.Spec{spec("x")})
	WaitFor(t, "running", func() bool { return sup.Running("test/a") })
	done := make(chan struct{})
	go func() { sup.Sync(context.Background(), nil); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("stopping a stuck session never returned")
	}
	if len(sup.Status()) != 0 {
		t.Error("a stuck session was not forgotten")
	}
}

// A session learns why it ends: removed from the spec, or braid stopping.
func TestSupervisorTellsWhyASessionEnds(t *testing.T) {
	causes := make(chan error, 2)
	sess := &testSession{}
	sess.behave = func(ctx context.Context, cfg testConfig, env *session.Env) error {
		env.SetState(session.Running, "")
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	}
	sup, _ := newTestSupervisor(t, sess)
	sup.Sync(context.Background(), []session.Spec{spec("x")})
	WaitFor(t, "running", func() bool { return sup.Running("test/a") })
	sup.Sync(context.Background(), nil)
	if got := <-causes; !errors.Is(got, session.ErrRemoved) {
		t.Errorf("removed from the spec: cause %v", got)
	}
	sup.Sync(context.Background(), []session.Spec{spec("x")})
	WaitFor(t, "running again", func() bool { return sup.Running("test/a") })
	sup.StopAll()
	if got := <-causes; !errors.Is(got, session.ErrShutdown) {
		t.Errorf("stopped with braid: cause %v", got)
	}
}
