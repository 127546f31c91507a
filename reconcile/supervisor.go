package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// Supervisor runs the sessions the desired state names. After every pass
// the daemon hands it the desired sessions (Sync): it starts the new
// ones, gives changed ones their new configuration (in place where the
// session can, else by stopping and starting it), and stops those that
// are gone, each within StopTimeout. A session that crashes (an error, a
// panic, or Run returning early) is restarted with a backoff from
// MinBackoff doubling to MaxBackoff; it never takes the daemon down.
type Supervisor struct {
	Registry *session.Registry
	Facts    *facts.Hub
	Log      *slog.Logger
	// StopTimeout bounds the wait for a session to stop (default 5 s).
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a crashed session
	// runs again (default 1 s and 1 minute).
	MinBackoff, MaxBackoff time.Duration
	// OnRunning, if set, is called when a session starts or stops
	// running: the process-bound objects it owns come or go with it.
	OnRunning func()
	// ResolveSecrets hashes a configuration's secrets (default: resolve
	// each with its Resolve, from files and the environment).
	ResolveSecrets func(session.Config) string

	mu       sync.Mutex
	sessions map[string]*runner
}

func (s *Supervisor) defaults() {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Registry == nil {
		s.Registry = &session.Registry{}
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = 5 * time.Second
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = time.Minute
	}
	if s.ResolveSecrets == nil {
		s.ResolveSecrets = SecretsHash
	}
	if s.sessions == nil {
		s.sessions = map[string]*runner{}
	}
}

// SecretsHash resolves a configuration's secrets and returns a hash of
// their values ("" when it has none). A secret that cannot be resolved
// hashes as its error, so that it changes when the file appears.
func SecretsHash(c session.Config) string {
	if c == nil {
		return ""
	}
	refs := c.Secrets()
	if len(refs) == 0 {
		return ""
	}
	h := sha256.New()
	for _, ref := range refs {
		v, err := ref.Resolve(nil, nil)
		if err != nil {
			v = "error: " + err.Error()
		}
		fmt.Fprintf(h, "%d:%s;", len(v), v)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// SessionResource is a session as the plan shows and compares it: its
// spec's fields, and a hash of its resolved secrets ("config", always
// redacted), so that a rotated password is a change.
type SessionResource struct {
	Spec session.Spec
	Hash string
	// A configuration may hold slices: two resources compare by their
	// fields, never with ==.
	_ [0]func()
}

// Address implements plan.Resource.
func (r SessionResource) Address() string { return r.Spec.Address() }

// Fields implements plan.Resource.
func (r SessionResource) Fields() []plan.Field {
	fs := r.Spec.Fields()
	if r.Hash != "" {
		fs = append(fs, plan.Field{Name: "config", Value: r.Hash, Secret: true})
	}
	return fs
}

// Resources resolves the desired sessions into the resources the plan
// compares: each with the hash of its secrets.
func (s *Supervisor) Resources(specs []session.Spec) []plan.Resource {
	s.mu.Lock()
	s.defaults()
	s.mu.Unlock()
	out := make([]plan.Resource, len(specs))
	for i, sp := range specs {
		out[i] = SessionResource{Spec: sp, Hash: s.ResolveSecrets(sp.Config)}
	}
	return out
}

// Live lists the sessions the supervisor runs, as resources.
func (s *Supervisor) Live() []plan.Resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]plan.Resource, 0, len(s.sessions))
	ids := mapsKeys(s.sessions)
	slices.Sort(ids)
	for _, id := range ids {
		r := s.sessions[id]
		r.mu.Lock()
		out = append(out, SessionResource{Spec: r.spec, Hash: r.hash})
		r.mu.Unlock()
	}
	return out
}

func mapsKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// DiffSessions is the plan of sessions: what Sync would start (create),
// reconfigure (update) and stop (delete) to go from live to desired.
func DiffSessions(desired, live []plan.Resource) []plan.Change {
	obs := make([]plan.Observed, len(live))
	for i, r := range live {
		obs[i] = plan.Observed{Resource: r}
	}
	changes, _ := plan.Diff(desired, obs)
	return changes
}

// Sync makes the running sessions those of specs, and returns what it
// changed.
func (s *Supervisor) Sync(ctx context.Context, specs []session.Spec) []plan.Change {
	desired := s.Resources(specs)
	s.mu.Lock()
	s.defaults()
	live := make([]plan.Resource, 0, len(s.sessions))
	for _, r := range s.sessions {
		r.mu.Lock()
		live = append(live, SessionResource{Spec: r.spec, Hash: r.hash})
		r.mu.Unlock()
	}
	s.mu.Unlock()
	changes := DiffSessions(desired, live)
	for _, c := range changes {
		switch c.Action {
		case plan.Create:
			s.start(ctx, c.After.(SessionResource))
		case plan.Update:
			s.update(c.After.(SessionResource))
		case plan.Delete:
			s.stop(c.Before.(SessionResource).Spec.ID(), true)
		}
	}
	return changes
}

// Running reports whether the session id ("proxy/peer") runs now.
func (s *Supervisor) Running(id string) bool {
	s.mu.Lock()
	r := s.sessions[id]
	s.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status.State == session.Running
}

// Status lists every session's status, by address.
func (s *Supervisor) Status() []session.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]session.Status, 0, len(s.sessions))
	for _, r := range s.sessions {
		r.mu.Lock()
		st := r.status
		st.Config = redacted(SessionResource{Spec: r.spec, Hash: r.hash}.Fields())
		r.mu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

func redacted(fs []plan.Field) []plan.Field {
	out := slices.Clone(fs)
	for i := range out {
		if out[i].Secret {
			out[i].Value = plan.Redacted
		}
	}
	return out
}

// StopAll stops every session (SIGTERM), each within StopTimeout, and
// keeps their facts.
func (s *Supervisor) StopAll() {
	s.mu.Lock()
	ids := mapsKeys(s.sessions)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { s.stop(id, false) })
	}
	wg.Wait()
}

// runner is one session and the goroutine that runs it.
type runner struct {
	sup  *Supervisor
	id   string
	impl session.Runnable // nil: this build has no implementation
	log  *slog.Logger

	cancel context.CancelCauseFunc
	done   chan struct{}
	kick   chan struct{}

	mu        sync.Mutex
	spec      session.Spec
	hash      string
	status    session.Status
	runCancel context.CancelFunc
	restart   bool
}

func (s *Supervisor) start(ctx context.Context, res SessionResource) {
	id := res.Spec.ID()
	r := &runner{sup: s, id: id, spec: res.Spec, hash: res.Hash, log: s.Log.With("session", id),
		done: make(chan struct{}), kick: make(chan struct{}, 1)}
	r.status = session.Status{Address: res.Spec.Address()}
	impl, ok := s.Registry.New(res.Spec.Kind)
	s.mu.Lock()
	s.sessions[id] = r
	s.mu.Unlock()
	if !ok {
		r.set(session.Unavailable, "not built into this version of braid")
		close(r.done)
		return
	}
	r.impl = impl
	ctx, r.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	r.log.Info("starting session")
	go r.loop(ctx)
}

func (s *Supervisor) update(res SessionResource) {
	s.mu.Lock()
	r := s.sessions[res.Spec.ID()]
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	old := r.spec
	r.spec, r.hash = res.Spec, res.Hash
	runCancel := r.runCancel
	r.mu.Unlock()
	if r.impl == nil {
		return
	}
	if old.Wait == res.Spec.Wait && runCancel != nil {
		err := r.impl.Update(res.Spec.Config)
		if err == nil {
			r.log.Info("session reconfigured in place")
			return
		}
		r.log.Info("session restarts with its new configuration", "why", err)
	}
	// Not running, or it cannot change in place: the loop starts it
	// again at once with the new spec.
	r.restartNow(runCancel)
}

// restartNow ends the current run, if any, and wakes the loop, which
// starts the session again at once with its newest spec.
func (r *runner) restartNow(runCancel context.CancelFunc) {
	r.mu.Lock()
	r.restart = true
	r.mu.Unlock()
	if runCancel != nil {
		runCancel()
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// stop ends a session within StopTimeout; forget also withdraws its facts
// (it is gone from the spec).
func (s *Supervisor) stop(id string, forget bool) {
	s.mu.Lock()
	r := s.sessions[id]
	delete(s.sessions, id)
	s.mu.Unlock()
	if r == nil {
		return
	}
	if r.cancel != nil {
		cause := session.ErrShutdown
		if forget {
			cause = session.ErrRemoved
		}
		r.cancel(cause)
	}
	select {
	case <-r.done:
	case <-time.After(s.StopTimeout):
		r.log.Error("session did not stop in time; abandoning it", "timeout", s.StopTimeout)
	}
	if forget && s.Facts != nil {
		if err := s.Facts.Publish(id, nil); err != nil {
			r.log.Warn("withdraw the session's facts", "err", err)
		}
	}
	r.log.Info("session stopped")
}

// set records a state change.
func (r *runner) set(st session.State, detail string) {
	r.mu.Lock()
	was := r.status.State
	if was != st {
		r.status.Since = time.Now()
	}
	r.status.State, r.status.Detail = st, detail
	r.mu.Unlock()
	if was != st {
		r.log.Info("session state", "state", string(st), "detail", detail)
		if (was == session.Running) != (st == session.Running) && r.sup.OnRunning != nil {
			r.sup.OnRunning()
		}
	}
}

// loop runs the session until its context ends: waiting while its spec
// says so, restarting it after a crash with a backoff, at once after a
// change of configuration.
func (r *runner) loop(ctx context.Context) {
	defer close(r.done)
	defer r.set(session.Stopped, "")
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		r.mu.Lock()
		spec := r.spec
		r.restart = false
		r.mu.Unlock()
		if spec.Wait != "" {
			r.set(session.Waiting, spec.Wait)
			select {
			case <-ctx.Done():
			case <-r.kick:
			}
			continue
		}
		runCtx, cancel := context.WithCancel(ctx)
		r.mu.Lock()
		// A change that arrived since spec was read: read it again.
		stale := r.restart
		r.runCancel = cancel
		r.mu.Unlock()
		if stale {
			cancel()
			continue
		}
		r.set(session.Starting, "")
		err, panicked := r.runOnce(runCtx, spec)
		cancel()
		r.mu.Lock()
		r.runCancel = nil
		restart := r.restart
		r.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if restart {
			backoff = 0
			continue
		}
		if err == nil {
			err = fmt.Errorf("session ended by itself")
		}
		backoff = nextBackoff(backoff, r.sup.MinBackoff, r.sup.MaxBackoff)
		r.crashed(err, panicked, backoff)
		select {
		case <-ctx.Done():
		case <-r.kick:
		case <-time.After(backoff):
		}
	}
}

// nextBackoff is the wait after a crash that followed a wait of prev:
// MinBackoff first, doubling up to MaxBackoff. A session that ran until a
// change of configuration starts again from MinBackoff.
func nextBackoff(prev, lo, hi time.Duration) time.Duration {
	return min(max(2*prev, lo), hi)
}

// runOnce runs the session once, turning a panic into an error.
func (r *runner) runOnce(ctx context.Context, spec session.Spec) (err error, panicked bool) {
	env := session.NewEnv(r.id, r.sup.Log, r.sup.Facts, r.set)
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("session panicked", "panic", p, "stack", string(debug.Stack()))
			err, panicked = fmt.Errorf("panic: %v", p), true
		}
	}()
	return r.impl.Run(ctx, spec.Config, env), false
}

// crashed records a crash, and withdraws the session's facts that were
// bound to its run (a link that closed with it).
func (r *runner) crashed(err error, panicked bool, backoff time.Duration) {
	r.mu.Lock()
	r.status.LastError, r.status.LastErrorAt = err.Error(), time.Now()
	r.status.Restarts++
	if panicked {
		r.status.Panics++
	}
	r.mu.Unlock()
	r.log.Warn("session crashed; restarting", "in", backoff, "err", err)
	r.set(session.Failed, fmt.Sprintf("restarting in %s", backoff))
	if hub := r.sup.Facts; hub != nil {
		slot := hub.Set().Slots[r.id]
		var keep []facts.Fact
		for _, f := range slot.Facts {
			if !f.Process {
				keep = append(keep, f)
			}
		}
		if len(keep) != len(slot.Facts) {
			if err := hub.Publish(r.id, keep); err != nil {
				r.log.Warn("withdraw the crashed session's facts", "err", err)
			}
		}
	}
}

// Snapshot is a resource as another process sees it over the control
// socket: its address and fields (a CLI plan diffs its desired sessions
// against the daemon's snapshots).
type Snapshot struct {
	Addr string       `json:"address"`
	Fs   []plan.Field `json:"fields"`
}

// Address implements plan.Resource.
func (s Snapshot) Address() string { return s.Addr }

// Fields implements plan.Resource.
func (s Snapshot) Fields() []plan.Field { return s.Fs }

// Snapshots turns resources into snapshots.
func Snapshots(rs []plan.Resource) []Snapshot {
	out := make([]Snapshot, len(rs))
	for i, r := range rs {
		out[i] = Snapshot{Addr: r.Address(), Fs: r.Fields()}
	}
	return out
}

// ResolveSessions turns desired sessions into the resources a plan
// compares, each with the hash of its resolved secrets (SecretsHash).
func ResolveSessions(specs []session.Spec) []plan.Resource {
	out := make([]plan.Resource, len(specs))
	for i, sp := range specs {
		out[i] = SessionResource{Spec: sp, Hash: SecretsHash(sp.Config)}
	}
	return out
}
