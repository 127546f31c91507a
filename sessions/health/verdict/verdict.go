// Package verdict is the state machine of an uplink's health tracker: a
// pure function of (state, event, now) that returns the new state and what
// to do. It has no sockets, no timers and no clock of its own; the health
// session (package health) feeds it the results of probe rounds and the
// link's carrier events, and carries out its actions: publish the verdict
// as a fact, log the transition, count it.
//
// The rules:
//
//   - a round succeeds when any probe answered within the timeout; FailAfter
//     failed rounds in a row make a healthy uplink unhealthy, RecoverAfter
//     successful rounds in a row make an unhealthy one healthy again;
//   - so does silence: no answer for FailAfter x Interval since the last
//     one (BFD's detection time, RFC 5880 6.8.4). Rounds start every
//     Interval whatever happens, so when a path dies the first round that
//     fails may start up to an interval later, and FailAfter failed rounds
//     would take up to (FailAfter+1) x Interval from the fault; counted
//     from the last answer, which came before the fault, detection takes
//     at most FailAfter x Interval. By then FailAfter rounds have been
//     sent since that answer, and the last of them has had as long to
//     answer as that answer took;
//   - carrier loss makes the uplink unhealthy at once, whatever the rounds
//     say; while the carrier is down no round counts towards recovery, and
//     once it is back the uplink needs RecoverAfter good rounds like any
//     other unhealthy uplink;
//   - an uplink starts healthy (braid routes over an uplink it knows
//     nothing bad about, as over one without a tracker), unless its carrier
//     is down;
//   - a round that could not be sent (Round.Unsent: the uplink has no
//     address of any probe's family yet, or its link is down) is no
//     evidence: it fails nothing and recovers nothing (it breaks a run of
//     successful rounds). Until the first round is sent the tracker is
//     Waiting: its verdict is the starting one and silence is counted
//     from the last round that could not be sent, not from the start,
//     so an uplink whose lease comes after it started is judged by its
//     first real rounds, not declared dead while it had no address. Once
//     rounds have been sent, silence is counted as before, sent or not: an
//     uplink that loses its address after answering goes unhealthy after
//     FailAfter x Interval without an answer, and needs RecoverAfter
//     answered rounds once it can send again;
//   - the last Window rounds are kept for status: their loss and the
//     round-trip times of those that succeeded.
package verdict

import (
	"fmt"
	"slices"
	"time"
)

// Window is how many recent rounds a State keeps for loss and round-trip
// times.
const Window = 20

// Params are the tracker's thresholds.
type Params struct {
	// FailAfter failed rounds in a row make the uplink unhealthy (at least
	// 1).
	FailAfter int
	// RecoverAfter successful rounds in a row make it healthy again (at
	// least 1).
	RecoverAfter int
	// Interval is the time between rounds: FailAfter x Interval without an
	// answer makes the uplink unhealthy. Zero leaves only the rounds'
	// count.
	Interval time.Duration
}

// Round is what one round of probes found.
type Round struct {
	// OK is set when a probe answered within the timeout.
	OK bool
	// RTT is how long the first answer took (OK rounds).
	RTT time.Duration
	// Unsent is set when no probe could be sent (no source address of
	// any probe's family, link down): the round says nothing of the path.
	Unsent bool
	// Detail says which probe answered, or why none did ("icmp
	// 198.51.100.80: no echo reply: i/o timeout").
	Detail string
}

// Carrier is a change of the link's carrier (IFF_LOWER_UP), from the
// kernel's link notifications: Up false also stands for a link that is
// gone.
type Carrier struct {
	Up bool
}

// Tick is time passing: the session sends it at State.Deadline, when
// silence since the last answer makes the uplink unhealthy.
type Tick struct{}

// Event is a Round, a Carrier or a Tick.
type Event interface{ event() }

func (Round) event()   {}
func (Carrier) event() {}
func (Tick) event()    {}

// Transition is the one action: the verdict changed. The session publishes
// it as the uplink's health fact, logs one line and counts it.
type Transition struct {
	// Healthy is the new verdict.
	Healthy bool
	// Reason says why, for logs and status.
	Reason string
	// At is when it changed.
	At time.Time
}

// Direction is "healthy" or "unhealthy": the verdict a transition goes to,
// as logs and metrics label it.
func (t Transition) Direction() string { return direction(t.Healthy) }

func direction(healthy bool) string {
	if healthy {
		return "healthy"
	}
	return "unhealthy"
}

// State is where the tracker is. The zero State is not valid: start from
// New.
type State struct {
	Params Params
	// Healthy is the current verdict; Reason why, Since when.
	Healthy bool
	Reason  string
	Since   time.Time
	// Carrier is the link's carrier as last reported.
	Carrier bool
	// Failed and Passed count the failed and successful rounds in a row
	// (one of them is 0). Passed counts only rounds with the carrier up.
	Failed, Passed int
	// Waiting is set until a round is sent: the verdict is the starting
	// one, and silence is counted from the last round that could not be
	// sent.
	Waiting bool
	// Unsent counts the rounds in a row that could not be sent.
	Unsent int
	// Transitions counts the verdict's changes since New.
	Transitions int
	// LastAnswer is when a round last succeeded (before the first, New's
	// time or, while Waiting, the last round that could not be sent):
	// silence is counted from it.
	LastAnswer time.Time
	// Last is the last round.
	Last Round
	// recent holds the last Window rounds, oldest first once full: a ring
	// written at next.
	recent [Window]Round
	n      int
	next   int
}

// New returns the state of a tracker that starts now, with the link's
// carrier as the kernel has it.
func New(p Params, carrier bool, now time.Time) State {
	s := State{Params: p.normal(), Healthy: carrier, Carrier: carrier, Since: now, LastAnswer: now,
		Waiting: true, Reason: "starting: healthy until rounds fail"}
	if !carrier {
		s.Reason = "no carrier"
	}
	return s
}

// normal raises thresholds below 1 to 1.
func (p Params) normal() Params {
	return Params{FailAfter: max(p.FailAfter, 1), RecoverAfter: max(p.RecoverAfter, 1), Interval: max(p.Interval, 0)}
}

// Deadline is when silence makes a healthy uplink unhealthy:
// FailAfter x Interval after the last answer. It is zero when the uplink
// is unhealthy or Interval is zero. While Waiting, each round that could
// not be sent pushes it on.
func (s State) Deadline() time.Time {
	if !s.Healthy || s.Params.Interval <= 0 {
		return time.Time{}
	}
	return s.LastAnswer.Add(time.Duration(s.Params.FailAfter) * s.Params.Interval)
}

// WithParams changes the thresholds and keeps the rest (a new
// configuration in place): the counts in a row go on, and a count that
// already reaches a new threshold counts at the next round.
func (s State) WithParams(p Params) State {
	s.Params = p.normal()
	return s
}

// Step applies e at now. It returns the new state, and the transition if
// the verdict changed.
func Step(s State, e Event, now time.Time) (State, *Transition) {
	switch e := e.(type) {
	case Round:
		s.Last = e
		if e.Unsent {
			s.Unsent++
			s.Passed = 0
			if s.Waiting {
				s.LastAnswer = now
			} else if s.Healthy && s.silent(now) {
				return s.change(false, fmt.Sprintf("no answer for %s: %s", now.Sub(s.LastAnswer).Round(time.Millisecond), e.Detail), now)
			}
			return s, nil
		}
		s.Waiting, s.Unsent = false, 0
		s.record(e)
		if e.OK {
			s.LastAnswer = now
		}
		if e.OK && s.Carrier {
			s.Passed++
			s.Failed = 0
		} else if e.OK {
			// An answer without a carrier (a stale event, or the link
			// back before its notification): it neither fails nor
			// recovers the uplink.
			s.Failed = 0
		} else {
			s.Failed++
			s.Passed = 0
		}
		switch {
		case s.Healthy && s.Failed >= s.Params.FailAfter:
			return s.change(false, fmt.Sprintf("%d rounds failed in a row: %s", s.Failed, e.Detail), now)
		case !s.Healthy && s.Passed >= s.Params.RecoverAfter:
			return s.change(true, fmt.Sprintf("%d rounds answered in a row: %s", s.Passed, e.Detail), now)
		case s.Healthy && !e.OK && s.silent(now):
			return s.change(false, fmt.Sprintf("no answer for %s: %s", now.Sub(s.LastAnswer).Round(time.Millisecond), e.Detail), now)
		}
	case Tick:
		if s.Healthy && s.silent(now) {
			reason := fmt.Sprintf("no answer for %s", now.Sub(s.LastAnswer).Round(time.Millisecond))
			if s.Last.Detail != "" && !s.Last.OK {
				reason += ": " + s.Last.Detail
			}
			return s.change(false, reason, now)
		}
	case Carrier:
		if e.Up == s.Carrier {
			return s, nil
		}
		s.Carrier = e.Up
		s.Passed = 0
		if !e.Up && s.Healthy {
			return s.change(false, "carrier lost", now)
		}
	}
	return s, nil
}

// silent reports whether no round has answered for FailAfter x Interval.
func (s State) silent(now time.Time) bool {
	d := s.Deadline()
	return !d.IsZero() && !now.Before(d)
}

// change records a new verdict and returns its transition.
func (s State) change(healthy bool, reason string, now time.Time) (State, *Transition) {
	s.Healthy, s.Reason, s.Since = healthy, reason, now
	s.Transitions++
	return s, &Transition{Healthy: healthy, Reason: reason, At: now}
}

// record keeps r among the recent rounds.
func (s *State) record(r Round) {
	s.recent[s.next] = r
	s.next = (s.next + 1) % Window
	s.n = min(s.n+1, Window)
}

// Recent returns the last rounds, oldest first (at most Window).
func (s State) Recent() []Round {
	out := make([]Round, 0, s.n)
	start := (s.next - s.n + Window) % Window
	for i := range s.n {
		out = append(out, s.recent[(start+i)%Window])
	}
	return out
}

// Stats summarises the recent rounds: how many, the share that failed, and
// the median and highest round-trip time of those that answered (zero when
// none did).
type Stats struct {
	Rounds    int
	Loss      float64
	MedianRTT time.Duration
	MaxRTT    time.Duration
}

// Stats returns the statistics of the recent rounds.
func (s State) Stats() Stats {
	st := Stats{Rounds: s.n}
	var rtts []time.Duration
	failed := 0
	for _, r := range s.Recent() {
		if !r.OK {
			failed++
			continue
		}
		rtts = append(rtts, r.RTT)
	}
	if s.n > 0 {
		st.Loss = float64(failed) / float64(s.n)
	}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		st.MedianRTT, st.MaxRTT = rtts[len(rtts)/2], rtts[len(rtts)-1]
	}
	return st
}

// Describe renders the state for `braid status`, one line: the verdict
// and for how long, its reason, and the recent rounds' loss and round-trip
// times. A healthy tracker Waiting for its first round to leave is
// "unknown": "unknown for 4s (waiting for an address to probe from: ...)".
func (s State) Describe(now time.Time) string {
	st := s.Stats()
	var out string
	if s.Waiting && s.Healthy && s.Unsent > 0 {
		out = fmt.Sprintf("unknown for %s (waiting for an address to probe from: %d rounds not sent: %s; routed as healthy until a probe fails)",
			now.Sub(s.Since).Round(time.Second), s.Unsent, s.Last.Detail)
	} else {
		out = fmt.Sprintf("%s for %s (%s)", direction(s.Healthy), now.Sub(s.Since).Round(time.Second), s.Reason)
		if s.Unsent > 0 {
			out += fmt.Sprintf("; %d rounds not sent: %s", s.Unsent, s.Last.Detail)
		}
	}
	if !s.Carrier {
		out += "; no carrier"
	}
	if st.Rounds == 0 {
		return out + "; no round yet"
	}
	out += fmt.Sprintf("; last %d rounds: loss %.0f%%", st.Rounds, 100*st.Loss)
	if st.MaxRTT > 0 {
		out += fmt.Sprintf(", rtt median %s max %s", roundRTT(st.MedianRTT), roundRTT(st.MaxRTT))
	}
	return out
}

// roundRTT keeps three significant digits or so.
func roundRTT(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
