// Package peerhealth judges whether the aggregation peer works, from two
// kinds of evidence: active probes, out of each healthy uplink, and what
// the connections the proxy relays tell of the peer (whether it answered
// them). It is a pure state machine: no sockets, no clock but the times
// it is given; the proxy session (package proxy) runs the probes and
// reports the connections.
//
// The peer is healthy while a probe reached it over at least one uplink
// and it is not passively down. An uplink reaches the peer after one
// successful probe, and stops after Params.FailAfter failed ones in a
// row (at once before it ever reached it). The peer is passively down
// after Params.Misses proxied connections in a row without an answer
// (no authenticated byte within the proxy's wait, or a reply that does
// not decrypt): it accepts connections but cannot serve them, which a
// connect probe cannot see (a rotated key, a broken server). Any
// answered connection resets the count.
//
// From passively down the peer comes back by evidence that it relays: an
// answered connection, or, with Params.EndToEnd, a successful probe
// (which carried a request through the peer). Without end-to-end probes
// nothing proves that before LAN traffic goes through it again, so the
// peer is restored on trial after Params.Backoff: the next answered
// connection confirms it, Misses more put it down again with twice the
// backoff, up to Params.MaxBackoff.
//
// IPv6 is judged apart, since the peer dials each destination in its
// own family and may have no IPv6 route: Params.Misses connections to
// IPv6 destinations in a row that the peer closed (or left) without a
// byte, with none answered between, mean the peer relays no IPv6
// (Verdict.NoIPv6), while it may relay IPv4 well; such a close is no
// miss of the peer as a whole. An answered IPv6 connection clears it;
// otherwise it is cleared on trial after the same doubling backoff
// (end-to-end probes ask over IPv4, and prove nothing of IPv6).
package peerhealth

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of the zero Params fields.
const (
	DefaultMisses     = 3
	DefaultFailAfter  = 2
	DefaultBackoff    = 30 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

// Params are the machine's thresholds.
type Params struct {
	// Misses is how many proxied connections in a row without an answer
	// put the peer down.
	Misses int
	// FailAfter is how many failed probes in a row make an uplink that
	// reached the peer stop reaching it.
	FailAfter int
	// Backoff is how long a passively down peer waits for its first trial
	// (without EndToEnd); each trial that fails doubles it, up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// EndToEnd is set when a successful probe carried a request through
	// the peer and got its answer: it proves the peer relays.
	EndToEnd bool
}

func (p Params) withDefaults() Params {
	p.Misses = cmp.Or(p.Misses, DefaultMisses)
	p.FailAfter = cmp.Or(p.FailAfter, DefaultFailAfter)
	p.Backoff = cmp.Or(p.Backoff, DefaultBackoff)
	p.MaxBackoff = max(cmp.Or(p.MaxBackoff, DefaultMaxBackoff), p.Backoff)
	return p
}

// uplink is what the probes over one uplink found.
type uplink struct {
	name    string
	known   bool // probed at least once
	reached bool
	fails   int    // failed probes in a row
	err     string // the last failure
}

// Machine is the peer's health. Its zero value is not ready: use New.
type Machine struct {
	p       Params
	uplinks []*uplink
	// all is the judgement of every proxied connection: the peer is
	// passively down while all.down.
	all streak
	// proven is set when the last evidence of the peer relaying was an
	// answer (or an end-to-end probe), not a miss.
	proven bool
	// v6 is the judgement of IPv6 destinations alone.
	v6 streak
}

// streak judges whether the peer relays a kind of connection from its
// misses in a row: misses counts them since one was answered; down is
// set once they reach Params.Misses. trial is set while it is restored
// on trial; backoff is the wait before the next trial, retryAt when it
// comes.
type streak struct {
	misses  int
	down    bool
	trial   bool
	backoff time.Duration
	retryAt time.Time
}

// miss counts a connection without an answer: the Misses-th in a row
// puts the streak down, with the first backoff, or twice the last one
// when it was on trial.
func (s *streak) miss(p Params, now time.Time) {
	s.misses++
	if s.down || s.misses < p.Misses {
		return
	}
	s.down = true
	if s.trial {
		s.backoff = min(2*s.backoff, p.MaxBackoff)
	} else {
		s.backoff = p.Backoff
	}
	s.trial = false
	s.retryAt = now.Add(s.backoff)
}

// retry restores a down streak on trial.
func (s *streak) retry() { s.down, s.trial, s.misses = false, true, 0 }

// New returns the machine for a peer not yet probed, over uplinks.
func New(p Params, uplinks []string) *Machine {
	m := &Machine{p: p.withDefaults()}
	m.SetUplinks(uplinks)
	return m
}

// SetUplinks changes the uplinks probed: those already probed keep what
// they found, new ones are not yet probed, and the others are forgotten.
func (m *Machine) SetUplinks(names []string) {
	var next []*uplink
	for _, n := range names {
		u := m.uplink(n)
		if u == nil {
			u = &uplink{name: n}
		}
		next = append(next, u)
	}
	m.uplinks = next
}

// SetParams changes the thresholds; what was found stays.
func (m *Machine) SetParams(p Params) { m.p = p.withDefaults() }

func (m *Machine) uplink(name string) *uplink {
	for _, u := range m.uplinks {
		if u.name == name {
			return u
		}
	}
	return nil
}

// Probed records a probe over uplink: failure is "" when it succeeded,
// else what failed ("connection refused"). A probe over an uplink no
// longer probed is ignored.
func (m *Machine) Probed(uplinkName, failure string) {
	u := m.uplink(uplinkName)
	if u == nil {
		return
	}
	if failure == "" {
		u.known, u.reached, u.fails, u.err = true, true, 0, ""
		if m.p.EndToEnd {
			m.answered()
		}
		return
	}
	u.fails++
	u.err = failure
	if !u.known || u.fails >= m.p.FailAfter {
		u.known, u.reached = true, false
	}
}

// Connection records how a proxied connection went: answered when the
// peer sent an authenticated byte in time, else a miss.
func (m *Machine) Connection(answered bool, now time.Time) {
	if answered {
		m.answered()
		return
	}
	m.proven = false
	m.all.miss(m.p, now)
}

// Connection6 records how a proxied connection to an IPv6 destination
// went, for the IPv6 judgement: answered when the peer sent an
// authenticated byte, else failed when the peer closed it (or left it
// unanswered) without one. The caller reports the connection to
// Connection as well, by its own rule.
func (m *Machine) Connection6(answered bool, now time.Time) {
	if answered {
		m.v6 = streak{}
		return
	}
	m.v6.miss(m.p, now)
}

// answered is evidence that the peer relays.
func (m *Machine) answered() {
	m.all, m.proven = streak{}, true
}

// Tick lets time pass: a passively down peer whose backoff has passed
// is restored on trial (without end-to-end probes).
func (m *Machine) Tick(now time.Time) {
	if at := m.RetryAt(); !at.IsZero() && !now.Before(at) {
		m.all.retry()
	}
	if m.v6.down && !now.Before(m.v6.retryAt) {
		m.v6.retry()
	}
}

// RetryAt6 is when the next trial of IPv6 is due, or zero when none
// waits.
func (m *Machine) RetryAt6() time.Time {
	if !m.v6.down {
		return time.Time{}
	}
	return m.v6.retryAt
}

// RetryAt is when the next trial is due, or zero when none waits.
func (m *Machine) RetryAt() time.Time {
	if !m.all.down || m.p.EndToEnd {
		return time.Time{}
	}
	return m.all.retryAt
}

// Strict reports whether a new connection should be given up (and its
// client reset) when the peer does not answer it in time: so until the
// peer has answered since its last miss, or ever. Once it answers, a
// silent connection may be a client's long poll.
func (m *Machine) Strict() bool { return !m.proven }

// Verdict is the peer's health as the machine judges it now.
type Verdict struct {
	// Known is false until the probes over every uplink have reported,
	// or one reached the peer: until then there is no verdict.
	Known   bool
	Healthy bool
	// Reason says why the peer is down, or that it is on trial.
	Reason string
	// Uplinks are the uplinks that reach the peer, in the order given.
	Uplinks []string
	// NoIPv6 is set when the peer relays no IPv6: LAN IPv6 goes direct.
	NoIPv6 bool
	// IPv6Reason says why NoIPv6 is set, or that IPv6 is on trial.
	IPv6Reason string
}

// Verdict returns the current verdict.
func (m *Machine) Verdict() Verdict {
	var v Verdict
	all := true
	var failed []string
	for _, u := range m.uplinks {
		all = all && u.known
		switch {
		case u.reached:
			v.Uplinks = append(v.Uplinks, u.name)
		case u.known:
			failed = append(failed, fmt.Sprintf("%s (%s)", u.name, u.err))
		}
	}
	reached := len(v.Uplinks) > 0
	v.Known = reached || (all && len(m.uplinks) > 0)
	switch {
	case !v.Known:
	case !reached:
		v.Reason = "not reached over " + strings.Join(failed, ", ")
	case m.all.down:
		v.Reason = fmt.Sprintf("no answer on %d connections in a row", m.p.Misses)
	default:
		v.Healthy = true
		if m.all.trial {
			v.Reason = fmt.Sprintf("on trial after no answer on %d connections in a row", m.p.Misses)
		}
	}
	switch {
	case m.v6.down:
		v.NoIPv6 = true
		v.IPv6Reason = fmt.Sprintf("the peer closed %d IPv6 connections in a row without an answer", m.p.Misses)
	case m.v6.trial:
		v.IPv6Reason = fmt.Sprintf("IPv6 on trial after the peer closed %d IPv6 connections in a row without an answer", m.p.Misses)
	}
	return v
}

// Equal reports whether two verdicts say the same.
func (v Verdict) Equal(w Verdict) bool {
	return v.Known == w.Known && v.Healthy == w.Healthy && v.Reason == w.Reason && slices.Equal(v.Uplinks, w.Uplinks) &&
		v.NoIPv6 == w.NoIPv6 && v.IPv6Reason == w.IPv6Reason
}

// Uplink is what the probes over one uplink found, for status.
type Uplink struct {
	Name    string
	Known   bool
	Reached bool
	// Err is the last failure, while it is not reached.
	Err string
}

// Uplinks lists the uplinks probed and what each found.
func (m *Machine) Uplinks() []Uplink {
	out := make([]Uplink, 0, len(m.uplinks))
	for _, u := range m.uplinks {
		e := Uplink{Name: u.name, Known: u.known, Reached: u.reached}
		if !u.reached {
			e.Err = u.err
		}
		out = append(out, e)
	}
	return out
}
