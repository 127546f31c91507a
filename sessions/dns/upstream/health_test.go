package upstream

import (
	"testing"
	"time"
)

// TestHealth plays sequences of tries and probes against one resolver's
// health, checking after each event whether it is up, whether the event
// changed that, and when the next probe is due (an offset from t0; -1:
// none).
func TestHealth(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type event struct {
		at      time.Duration // since t0
		probe   bool          // a probe's outcome, else a query's try
		o       Outcome
		up      bool
		changed bool
		probeAt time.Duration // -1: none due
	}
	for _, tc := range []struct {
		name   string
		events []event
	}{
		{"answers keep it up", []event{
			{at: 0, o: Answered, up: true, probeAt: -1},
			{at: time.Second, o: Answered, up: true, probeAt: -1},
		}},
		{"declining is not dying", []event{
			{at: 0, o: Declined, up: true, probeAt: -1},
			{at: time.Second, o: Declined, up: true, probeAt: -1},
		}},
		{"one failure kills, the first probe a second later", []event{
			{at: 0, o: Failed, up: false, changed: true, probeAt: time.Second},
		}},
		{"failed probes back off, doubling up to the cap", []event{
			{at: 0, o: Failed, changed: true, probeAt: time.Second},
			{at: 1 * time.Second, probe: true, o: Failed, probeAt: 3 * time.Second},
			{at: 3 * time.Second, probe: true, o: Failed, probeAt: 7 * time.Second},
			{at: 7 * time.Second, probe: true, o: Failed, probeAt: 15 * time.Second},
			{at: 15 * time.Second, probe: true, o: Failed, probeAt: 30 * time.Second},
			{at: 30 * time.Second, probe: true, o: Failed, probeAt: 45 * time.Second},
			{at: 45 * time.Second, probe: true, o: Answered, up: true, changed: true, probeAt: -1},
			// Dead again: the backoff starts over.
			{at: 50 * time.Second, o: Failed, changed: true, probeAt: 51 * time.Second},
		}},
		{"a probe declined: alive, back", []event{
			{at: 0, o: Failed, changed: true, probeAt: time.Second},
			{at: time.Second, probe: true, o: Declined, up: true, changed: true, probeAt: -1},
		}},
		{"a late failure of a dead one moves no probe", []event{
			{at: 0, o: Failed, changed: true, probeAt: time.Second},
			{at: 500 * time.Millisecond, o: Failed, probeAt: time.Second},
		}},
		{"a late answer of a dead one brings it back", []event{
			{at: 0, o: Failed, changed: true, probeAt: time.Second},
			{at: 500 * time.Millisecond, o: Answered, up: true, changed: true, probeAt: -1},
			// The probe started before it came back ends: nothing changes.
			{at: time.Second, probe: true, o: Failed, up: true, probeAt: -1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Health
			for i, e := range tc.events {
				now := t0.Add(e.at)
				var changed bool
				if e.probe {
					h.Probing()
					if h.ProbeAt() != (time.Time{}) {
						t.Fatalf("event %d: a probe due while one runs", i)
					}
					changed = h.Probed(e.o, time.Millisecond, "x", now)
				} else {
					changed = h.Tried(e.o, time.Millisecond, "x", now)
				}
				want := time.Time{}
				if e.probeAt >= 0 {
					want = t0.Add(e.probeAt)
				}
				if h.Up() != e.up || changed != e.changed || !h.ProbeAt().Equal(want) {
					t.Fatalf("event %d (%+v): up %v, changed %v, probe at %v; want %v, %v, %v",
						i, e, h.Up(), changed, h.ProbeAt(), e.up, e.changed, want)
				}
				if !want.IsZero() && (h.ProbeDue(want.Add(-time.Nanosecond)) || !h.ProbeDue(want)) {
					t.Fatalf("event %d: ProbeDue disagrees with ProbeAt %v", i, want)
				}
			}
		})
	}
}

// TestHealthLast: the last outcome's time, round trip and error; a
// failure keeps the last answer's round trip.
func TestHealthLast(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var h Health
	h.Tried(Answered, 20*time.Millisecond, "", t0)
	h.Tried(Failed, 0, "timed out", t0.Add(time.Second))
	if at, rtt, err := h.Last(); !at.Equal(t0.Add(time.Second)) || rtt != 20*time.Millisecond || err != "timed out" {
		t.Errorf("after a failure: %v %v %q", at, rtt, err)
	}
	h.Probing()
	h.Probed(Declined, 5*time.Millisecond, "SERVFAIL", t0.Add(2*time.Second))
	if at, rtt, err := h.Last(); !at.Equal(t0.Add(2*time.Second)) || rtt != 5*time.Millisecond || err != "SERVFAIL" {
		t.Errorf("after a declined probe: %v %v %q", at, rtt, err)
	}
}
