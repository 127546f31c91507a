package upstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/sockmark"
)

// DefaultTimeout bounds one try of a query over UDP: past it, the
// resolver is taken as dead and the query tried on the next one. A try
// over a stream (TCP, the peer), which may need a connection first, gets
// twice as long.
const DefaultTimeout = time.Second

// ProbeName is what a dead resolver's probes ask (type A): a name every
// resolver answers itself (RFC 6761 section 6.3). Any response brings
// the resolver back, whatever its code: it is alive.
const ProbeName = "localhost."

// ErrClosed is what Ask returns once the pool is closed.
var ErrClosed = errors.New("dns upstream: pool closed")

// Config is what a Pool asks.
type Config struct {
	// Upstreams are asked in order of preference, the dead ones
	// skipped.
	Upstreams []Resolver
	// Fallback are asked, in order, only while every upstream is dead:
	// the healthy uplinks' own resolvers.
	Fallback []Resolver
	// Dial reaches the aggregation peer, for the resolvers with Peer
	// set (NewPeerDialer); without it, they fail.
	Dial PeerDialer
	// Timeout bounds one try over UDP (twice it over a stream); zero:
	// DefaultTimeout.
	Timeout time.Duration
	// Idle closes a persistent connection without a query that long;
	// zero: DefaultIdle.
	Idle time.Duration
	// Log, when set, is told when a resolver goes down and comes back.
	Log *slog.Logger
}

// State is one resolver's, as Status reports it.
type State struct {
	Resolver
	// Fallback: one of Config.Fallback.
	Fallback bool
	// Up: queries are asked of it (it answered its last try or probe,
	// or was not asked yet).
	Up bool
	// InUse: the resolver queries are asked first now: the first
	// upstream up, or the first fallback up when every upstream is
	// dead.
	InUse bool
	// At is when it last answered, declined or failed; RTT the round
	// trip of its last response; Err what its last try or probe found
	// amiss ("" when answered: a timeout, a refused connection,
	// SERVFAIL, REFUSED).
	At  time.Time
	RTT time.Duration
	Err string
	// ProbeAt is when a dead resolver is probed next (zero while up, or
	// while a probe runs).
	ProbeAt time.Time
}

// Pool asks a query of the upstream resolvers in order, skipping the dead
// ones, and of the fallback resolvers when every upstream is dead; it
// probes the dead ones in the background until they answer. Its methods
// may be called concurrently.
type Pool struct {
	cfg     Config
	timeout time.Duration
	members []*member // the upstreams, then the fallbacks
	nUp     int       // how many of members are upstreams

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	kick   chan struct{}
	wg     sync.WaitGroup
	bufs   *sync.Pool // of the UDP tries

	mu sync.Mutex // guards the members' health
}

// member is one resolver of the pool.
type member struct {
	r        Resolver
	fallback bool
	h        Health
	// stream is its persistent connection: DNS over TCP to it, for the
	// truncated answers (nil through the peer); the peer's stream to it
	// with Peer.
	stream *stream
}

// New returns a pool asking cfg's resolvers, its prober running until
// Close.
func New(cfg Config) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{cfg: cfg, timeout: cmp.Or(cfg.Timeout, DefaultTimeout), ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), nUp: len(cfg.Upstreams), bufs: newBuffers()}
	idle := cmp.Or(cfg.Idle, DefaultIdle)
	for i, r := range append(append([]Resolver(nil), cfg.Upstreams...), cfg.Fallback...) {
		m := &member{r: r, fallback: i >= len(cfg.Upstreams)}
		m.stream = newStream(idle, p.dialer(r))
		p.members = append(p.members, m)
	}
	p.wg.Go(p.prober)
	return p
}

// dialer is how r's stream connects: through the peer to r.Addr, or by
// TCP to it, marked.
func (p *Pool) dialer(r Resolver) func(ctx context.Context) (net.Conn, error) {
	if r.Peer {
		return func(ctx context.Context) (net.Conn, error) {
			if p.cfg.Dial == nil {
				return nil, errors.New("no aggregation peer to ask through")
			}
			return p.cfg.Dial.DialStream(ctx, r.Addr.String())
		}
	}
	return func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Control: sockmark.Control(r.Mark)}
		return d.DialContext(ctx, "tcp", r.Addr.String())
	}
}

// Close stops the prober and closes the persistent connections; queries
// after it fail with ErrClosed.
func (p *Pool) Close() {
	p.cancel()
	for _, m := range p.members {
		m.stream.close()
	}
	p.wg.Wait()
}

// Ask asks q of the upstreams in order, skipping the dead ones, and
// returns the first answer, with q's identifier; SERVFAIL and REFUSED,
// no answer within the try's time, or a failed connection, move on to
// the next. When every upstream is dead (found so now, or before), it
// asks the live fallbacks in order; when every resolver is dead, it asks
// them all at once, and the first answer wins. With no answer but
// SERVFAIL or REFUSED ones, it returns the last of those; with none at
// all, an error. q is not modified; its EDNS0 OPT record goes as it is.
func (p *Pool) Ask(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if p.ctx.Err() != nil {
		return nil, ErrClosed
	}
	msg, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("dns upstream: pack the query: %w", err)
	}
	var declined *dns.Msg
	var errs []error
	tried := false
	ask := func(m *member) *dns.Msg {
		tried = true
		r, o, err := p.try(ctx, m, msg, q)
		switch {
		case o == Answered:
			return r
		case o == Declined:
			declined = r
		default:
			errs = append(errs, fmt.Errorf("%s: %w", m.r.Name, err))
		}
		return nil
	}
	for _, m := range p.members[:p.nUp] {
		if ctx.Err() != nil {
			break
		}
		if p.up(m) {
			if r := ask(m); r != nil {
				return withQueryID(r, q), nil
			}
		}
	}
	if ctx.Err() == nil && !p.anyUp(p.members[:p.nUp]) {
		for _, m := range p.members[p.nUp:] {
			if ctx.Err() != nil {
				break
			}
			if p.up(m) {
				if r := ask(m); r != nil {
					return withQueryID(r, q), nil
				}
			}
		}
	}
	if !tried && ctx.Err() == nil {
		r, d, err := p.race(ctx, msg, q)
		if r != nil {
			return withQueryID(r, q), nil
		}
		declined = d
		errs = append(errs, err)
	}
	if declined != nil {
		return withQueryID(declined, q), nil
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	if err == nil {
		err = errors.New("none asked")
	}
	return nil, fmt.Errorf("dns upstream: no resolver answered %s: %w", question(q), err)
}

// withQueryID gives r the identifier of the client's query q.
func withQueryID(r, q *dns.Msg) *dns.Msg {
	r.Id = q.Id
	return r
}

func question(q *dns.Msg) string {
	if len(q.Question) == 0 {
		return "the query"
	}
	return q.Question[0].Name + " " + dns.TypeToString[q.Question[0].Qtype]
}

// race asks every resolver at once, when all are dead: the first answer
// wins, and the others are given up.
func (p *Pool) race(ctx context.Context, msg []byte, q *dns.Msg) (answer, declined *dns.Msg, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		r   *dns.Msg
		o   Outcome
		err error
	}
	results := make(chan result, len(p.members))
	for _, m := range p.members {
		go func() {
			r, o, err := p.try(ctx, m, msg, q)
			results <- result{r, o, err}
		}()
	}
	var errs []error
	for range p.members {
		res := <-results
		switch {
		case res.o == Answered:
			return res.r, nil, nil
		case res.o == Declined:
			declined = res.r
		default:
			errs = append(errs, res.err)
		}
	}
	if len(p.members) == 0 {
		errs = append(errs, errors.New("no resolvers"))
	}
	return nil, declined, errors.Join(errs...)
}

// up reports whether m is up.
func (p *Pool) up(m *member) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return m.h.Up()
}

func (p *Pool) anyUp(ms []*member) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range ms {
		if m.h.Up() {
			return true
		}
	}
	return false
}

// try asks m once and records the outcome in its health, unless ctx
// ended first (the client gave up, which says nothing of the resolver).
func (p *Pool) try(ctx context.Context, m *member, msg []byte, q *dns.Msg) (*dns.Msg, Outcome, error) {
	start := time.Now()
	r, err := p.exchange(ctx, m, msg, q)
	if err != nil && ctx.Err() != nil {
		return nil, Failed, err
	}
	o, reason := Failed, ""
	switch {
	case err != nil:
		reason = err.Error()
	default:
		o = outcome(r)
		if o == Declined {
			reason = dns.RcodeToString[r.Rcode]
		}
	}
	now := time.Now()
	p.mu.Lock()
	changed := m.h.Tried(o, now.Sub(start), reason, now)
	p.mu.Unlock()
	if changed {
		p.changed(m, o, reason)
	}
	return r, o, err
}

// exchange asks m once: through the peer, or over UDP and, for a
// truncated answer, over TCP to the same resolver.
func (p *Pool) exchange(ctx context.Context, m *member, msg []byte, q *dns.Msg) (*dns.Msg, error) {
	if m.r.Peer {
		return p.exchangeStream(ctx, m, msg, q)
	}
	uctx, cancel := context.WithTimeout(ctx, p.timeout)
	r, err := exchangeUDP(uctx, p.bufs, m.r, msg, q)
	cancel()
	if err != nil {
		return nil, timedOut(err)
	}
	if r.Truncated {
		return p.exchangeStream(ctx, m, msg, q)
	}
	return r, nil
}

// exchangeStream asks m once on its persistent connection.
func (p *Pool) exchangeStream(ctx context.Context, m *member, msg []byte, q *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*p.timeout)
	defer cancel()
	b, id, err := m.stream.exchange(ctx, msg)
	if err != nil {
		return nil, timedOut(err)
	}
	r, err := decode(b, id, q)
	if err != nil {
		return nil, fmt.Errorf("its answer over TCP: %w", err)
	}
	return r, nil
}

// timedOut names a try's deadline for what it is.
func timedOut(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	return err
}

// changed logs m going down or coming back.
func (p *Pool) changed(m *member, o Outcome, reason string) {
	if o == Failed {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	if p.cfg.Log == nil {
		return
	}
	if o == Failed {
		p.cfg.Log.Warn("dns upstream down", "name", m.r.Name, "addr", m.r.Addr, "uplink", m.r.Uplink, "fallback", m.fallback, "err", reason)
	} else {
		p.cfg.Log.Info("dns upstream up", "name", m.r.Name, "addr", m.r.Addr, "uplink", m.r.Uplink, "fallback", m.fallback)
	}
}

// prober probes the dead resolvers as their health says, until Close.
func (p *Pool) prober() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var due []*member
		var next time.Time
		p.mu.Lock()
		for _, m := range p.members {
			if m.h.ProbeDue(now) {
				m.h.Probing()
				due = append(due, m)
			} else if at := m.h.ProbeAt(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		p.mu.Unlock()
		for _, m := range due {
			p.wg.Go(func() { p.probe(m) })
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		case <-timer.C:
		}
	}
}

// probe asks m ProbeName and records the outcome.
func (p *Pool) probe(m *member) {
	q := new(dns.Msg).SetQuestion(ProbeName, dns.TypeA)
	msg, err := q.Pack()
	if err != nil {
		panic(err) // a constant query
	}
	start := time.Now()
	r, err := p.exchange(p.ctx, m, msg, q)
	if p.ctx.Err() != nil {
		return
	}
	o, reason := Failed, ""
	if err != nil {
		reason = "probe: " + err.Error()
	} else if o = outcome(r); o == Declined {
		reason = "probe: " + dns.RcodeToString[r.Rcode]
	}
	now := time.Now()
	p.mu.Lock()
	changed := m.h.Probed(o, now.Sub(start), reason, now)
	p.mu.Unlock()
	if changed {
		p.changed(m, o, reason)
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Status is every resolver's state: the upstreams in order, then the
// fallbacks.
func (p *Pool) Status() []State {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []State
	inUse := -1 // the first up: an upstream, else a fallback
	for i, m := range p.members {
		if m.h.Up() {
			inUse = i
			break
		}
	}
	for i, m := range p.members {
		at, rtt, err := m.h.Last()
		out = append(out, State{Resolver: m.r, Fallback: m.fallback, Up: m.h.Up(), InUse: i == inUse,
			At: at, RTT: rtt, Err: err, ProbeAt: m.h.ProbeAt()})
	}
	return out
}

// FallbackInUse reports whether every upstream is dead, so that queries
// go to the fallback resolvers.
func (p *Pool) FallbackInUse() bool {
	return !p.anyUp(p.members[:p.nUp])
}
