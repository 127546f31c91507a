// Package session is the contract between braid's protocol sessions (DHCP,
// health tracking, L2TP/PPP, DHCPv6, the proxy, DNS, router
// advertisements) and the supervisor that runs them.
//
// The compiler turns a spec and the current facts into the desired state:
// kernel resources and sessions. A session in the desired state is a Spec,
// the resource "session[KIND/NAME]" with a typed configuration. The
// supervisor (package reconcile) starts the sessions the desired state
// names, gives a running session a new configuration (in place when it
// implements Updater, else by stopping and starting it), and stops those
// that are gone. A session reports what it learns as facts, into its own
// slot of the facts hub, and its state through its Env.
//
// A session author writes one type per kind:
//
//	type Config struct{ ... }                  // implements Config
//	type Client struct{ ... }                  // implements Session[Config]
//	func (c *Client) Run(ctx context.Context, cfg Config, env *session.Env) error
//
// and registers it: session.Register(reg, "dhcp4", func() session.Session[Config] { return &Client{} }).
// Nothing in this contract is untyped.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
)

// Config is the configuration of one kind of session, as the compiler
// writes it. Two configurations with equal fields and equal resolved
// secrets need no change.
type Config interface {
	// Fields lists the configuration for plans and status, in display
	// order. A secret appears as its reference (file:/etc/x), never its
	// value.
	Fields() []plan.Field
	// Secrets are the secret references the session resolves when it
	// starts. The supervisor hashes their resolved values, so that
	// rotating a password file is a change of configuration.
	Secrets() []*api.Secret
}

// Session runs one protocol session with configuration C.
type Session[C Config] interface {
	// Run runs the session until ctx ends, then returns nil. An error (or
	// a panic, or returning before ctx ends) is a crash: the supervisor
	// records it and runs the session again after a backoff, with the
	// newest configuration. context.Cause(ctx) says why it ended:
	// ErrRemoved, ErrShutdown, or context.Canceled for a restart with a
	// new configuration.
	Run(ctx context.Context, cfg C, env *Env) error
}

// Updater is a Session that can take a new configuration without a
// restart.
type Updater[C Config] interface {
	// Update applies cfg while Run runs. An error makes the supervisor
	// stop the session and start it again with cfg.
	Update(cfg C) error
}

// Why a session's context ends, as context.Cause tells it in Run: a
// session that leaves the spec may say goodbye (a DHCP client sends
// RELEASE); one stopped with braid, or restarted, must not (the lease and
// its address outlive the process).
var (
	// ErrRemoved: the session left the spec.
	ErrRemoved = errors.New("the session left the spec")
	// ErrShutdown: braid stops (SIGTERM); the session runs again when it
	// starts.
	ErrShutdown = errors.New("braid is stopping")
)

// ErrRestart is what an Updater returns for a change it cannot make in
// place.
var ErrRestart = errors.New("this change needs a restart")

// Spec is a session the desired state names: the resource
// "session[KIND/NAME]".
type Spec struct {
	// Kind is the session's protocol: dhcp4, health, l2tp, proxy, dns, ra.
	Kind string
	// Name tells sessions of one kind apart: the uplink's, tunnel's or
	// section's name.
	Name string
	// Config is the session's configuration, of the kind's type.
	Config Config
	// Wait, when set, says what the session waits for before it can
	// start ("link eth1", "the lease of fibre"); the supervisor keeps it
	// stopped, in state waiting.
	Wait string
	// Configurations may hold slices: specs compare by their fields.
	_ [0]func()
}

// ID is "KIND/NAME", the session's owner name in the facts hub.
func (s Spec) ID() string { return s.Kind + "/" + s.Name }

// Address implements plan.Resource.
func (s Spec) Address() string { return Address(s.Kind, s.Name) }

// Address returns the resource address of a session.
func Address(kind, name string) string { return "session[" + kind + "/" + name + "]" }

// Fields implements plan.Resource: the configuration's fields, then what
// it waits for, if anything.
func (s Spec) Fields() []plan.Field {
	var fs []plan.Field
	if s.Config != nil {
		fs = s.Config.Fields()
	}
	if s.Wait != "" {
		fs = append(fs, plan.Field{Name: "waiting", Value: s.Wait})
	}
	return fs
}

// State is where a session is in its life.
type State string

// States.
const (
	// Starting: Run was called and the session has not said more.
	Starting State = "starting"
	// Running: the session does its job.
	Running State = "running"
	// Waiting: the session waits for something (Detail says what): a
	// link, a lease, a peer.
	Waiting State = "waiting"
	// Failed: the session crashed (LastError says why) and waits for its
	// restart.
	Failed State = "error"
	// Stopped: the session ended.
	Stopped State = "stopped"
	// Unavailable: this build of braid has no implementation of the kind.
	Unavailable State = "unavailable"
)

// Status is a session's state for `braid status`.
type Status struct {
	// Address is "session[KIND/NAME]".
	Address string `json:"address"`
	State   State  `json:"state"`
	// Detail says more: what a waiting session waits for, what a running
	// one holds.
	Detail string `json:"detail,omitempty"`
	// Since is when the session entered State.
	Since time.Time `json:"since"`
	// LastError and LastErrorAt are its last crash.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// Restarts counts the crashes it was restarted from; Panics those of
	// them that were panics.
	Restarts int `json:"restarts,omitempty"`
	Panics   int `json:"panics,omitempty"`
	// Config is the configuration it runs with, secrets redacted.
	Config []plan.Field `json:"config,omitempty"`
}

// Env is what a running session may use. Its methods are safe for
// concurrent use.
type Env struct {
	id    string
	log   *slog.Logger
	hub   *facts.Hub
	state func(State, string)
}

// NewEnv returns the environment of the session id ("dhcp4/fibre"): its
// logger, its slot in hub, and where its state goes. The supervisor makes
// one per run; tests make their own.
func NewEnv(id string, log *slog.Logger, hub *facts.Hub, state func(State, string)) *Env {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if state == nil {
		state = func(State, string) {}
	}
	return &Env{id: id, log: log.With("session", id), hub: hub, state: state}
}

// ID is the session's "KIND/NAME".
func (e *Env) ID() string { return e.id }

// Log is the session's logger.
func (e *Env) Log() *slog.Logger { return e.log }

// SetState reports the session's state: Running once it does its job,
// Waiting with what it waits for ("link eth1").
func (e *Env) SetState(s State, detail string) { e.state(s, detail) }

// Publish replaces the session's facts: the compiler turns them into
// kernel objects at the next pass. Publishing none withdraws them.
func (e *Env) Publish(fs ...facts.Fact) error {
	if e.hub == nil {
		return errors.New("no facts hub")
	}
	if err := e.hub.Publish(e.id, fs); err != nil {
		return fmt.Errorf("publish facts of %s: %w", e.id, err)
	}
	return nil
}

// Facts returns every session's facts (a session that depends on
// another's: DHCPv6 on the PPP link, DNS on a lease's resolvers).
func (e *Env) Facts() facts.Set {
	if e.hub == nil {
		return facts.Set{}
	}
	return e.hub.Set()
}

// WatchFacts returns a channel told of every change of the facts, and a
// function that stops it.
func (e *Env) WatchFacts() (<-chan struct{}, func()) {
	if e.hub == nil {
		return make(chan struct{}), func() {}
	}
	return e.hub.Subscribe()
}

// Registry maps kinds to their implementations. The daemon builds one at
// start; the zero value is empty.
type Registry struct {
	kinds map[string]factory
}

// factory starts a session of one kind; it is the one place that turns
// a Config back into its kind's type.
type factory func() Runnable

// Runnable is a session behind the typed contract, as the supervisor
// drives it.
type Runnable interface {
	Run(ctx context.Context, cfg Config, env *Env) error
	// Update reports ErrRestart when the session cannot update in place.
	Update(cfg Config) error
}

// Register makes newSession the implementation of kind. Registering a kind
// twice replaces the first (a test build's stand-ins).
func Register[C Config](r *Registry, kind string, newSession func() Session[C]) {
	if r.kinds == nil {
		r.kinds = map[string]factory{}
	}
	r.kinds[kind] = func() Runnable { return &typed[C]{s: newSession()} }
}

// New returns a new session of kind, or false when this build has none.
func (r *Registry) New(kind string) (Runnable, bool) {
	f, ok := r.kinds[kind]
	if !ok {
		return nil, false
	}
	return f(), true
}

// Kinds lists the registered kinds.
func (r *Registry) Kinds() []string {
	var out []string
	for k := range r.kinds {
		out = append(out, k)
	}
	return out
}

// typed adapts a Session[C] to Runnable.
type typed[C Config] struct{ s Session[C] }

func (t *typed[C]) Run(ctx context.Context, cfg Config, env *Env) error {
	c, ok := cfg.(C)
	if !ok {
		return fmt.Errorf("session %s: configuration of type %T, want %T", env.ID(), cfg, *new(C))
	}
	return t.s.Run(ctx, c, env)
}

func (t *typed[C]) Update(cfg Config) error {
	u, ok := t.s.(Updater[C])
	if !ok {
		return ErrRestart
	}
	c, ok := cfg.(C)
	if !ok {
		return ErrRestart
	}
	return u.Update(c)
}

// Fields is a helper for Config implementations: it lists name=value
// pairs, leaving out empty values.
func Fields(pairs ...string) []plan.Field {
	var fs []plan.Field
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			fs = append(fs, plan.Field{Name: pairs[i], Value: pairs[i+1]})
		}
	}
	return fs
}

// SecretField shows a secret reference in a configuration's fields.
func SecretField(name string, s *api.Secret) plan.Field {
	return plan.Field{Name: name, Value: s.String()}
}

// Describe renders a status in one line for logs.
func (s Status) Describe() string {
	var b strings.Builder
	b.WriteString(string(s.State))
	if s.Detail != "" {
		b.WriteString(": " + s.Detail)
	}
	return b.String()
}
