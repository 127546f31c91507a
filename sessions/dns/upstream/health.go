package upstream

import "time"

// Backoff of a dead resolver's probes: the first comes MinBackoff after
// it died, each failed one doubles the wait, up to MaxBackoff.
const (
	MinBackoff = time.Second
	MaxBackoff = 15 * time.Second
)

// Outcome is how a resolver did on one try of a query, or on a probe.
type Outcome int

const (
	// Answered: a response (NOERROR, NXDOMAIN, and the other codes
	// that are answers).
	Answered Outcome = iota
	// Declined: SERVFAIL or REFUSED. The query is tried on the next
	// resolver, but this one is alive: it stays up (a dead one that
	// declines a probe is back).
	Declined
	// Failed: no response within the try's time, a connection refused
	// or reset, a stream that ended: the resolver is dead until a probe
	// is answered.
	Failed
)

// Health judges one resolver from its tries and probes. It has no clock
// and no socket: every event says when it happened. The zero value is a
// resolver not asked yet, taken as up.
type Health struct {
	down    bool
	probing bool
	backoff time.Duration
	probeAt time.Time
	// Of the last outcome: when, the round trip, what failed.
	at  time.Time
	rtt time.Duration
	err string
}

// Up reports whether queries may be asked of the resolver.
func (h *Health) Up() bool { return !h.down }

// Tried records the outcome of a query's try at now (rtt its round trip
// when answered, err what failed otherwise). It reports whether the
// resolver went up or down. A failure marks a live resolver down, its
// first probe MinBackoff away; a late failure of a dead one changes
// nothing but the last error.
func (h *Health) Tried(o Outcome, rtt time.Duration, err string, now time.Time) (changed bool) {
	h.last(o, rtt, err, now)
	switch {
	case o == Failed && !h.down:
		h.down, h.backoff, h.probeAt = true, MinBackoff, now.Add(MinBackoff)
		return true
	case o != Failed && h.down:
		h.revive()
		return true
	}
	return false
}

// ProbeDue reports whether a probe of the dead resolver is due at now,
// and none runs.
func (h *Health) ProbeDue(now time.Time) bool {
	return h.down && !h.probing && !now.Before(h.probeAt)
}

// ProbeAt is when the next probe is due: zero while up or probing.
func (h *Health) ProbeAt() time.Time {
	if !h.down || h.probing {
		return time.Time{}
	}
	return h.probeAt
}

// Probing records that a probe started.
func (h *Health) Probing() { h.probing = true }

// Probed records a probe's outcome at now. Any response (even SERVFAIL
// or REFUSED: the resolver is alive) brings the resolver back; a failure
// doubles the wait for the next, up to MaxBackoff. It reports whether
// the resolver came back.
func (h *Health) Probed(o Outcome, rtt time.Duration, err string, now time.Time) (changed bool) {
	h.probing = false
	if !h.down {
		return false // a query's answer brought it back meanwhile
	}
	h.last(o, rtt, err, now)
	if o != Failed {
		h.revive()
		return true
	}
	h.backoff = min(2*h.backoff, MaxBackoff)
	h.probeAt = now.Add(h.backoff)
	return false
}

func (h *Health) revive() {
	h.down, h.backoff, h.probeAt = false, 0, time.Time{}
}

func (h *Health) last(o Outcome, rtt time.Duration, err string, now time.Time) {
	h.at = now
	if o == Failed {
		h.err = err
		return
	}
	h.rtt, h.err = rtt, err
}

// Last is the last outcome's time, round trip (of the last response)
// and error ("" when it was answered).
func (h *Health) Last() (at time.Time, rtt time.Duration, err string) {
	return h.at, h.rtt, h.err
}
