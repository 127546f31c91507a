package peerhealth

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// show renders a verdict: "none", "up isp1,isp2", "up isp1 (on trial
// ...)", "down: reason".
func show(v Verdict) string {
	switch {
	case v.NoIPv6:
		v.NoIPv6, v.IPv6Reason = false, ""
		return show(v) + "; IPv6 direct"
	case v.IPv6Reason != "":
		r := v.IPv6Reason
		v.IPv6Reason = ""
		return show(v) + "; " + r
	case !v.Known:
		return "none"
	case v.Healthy && v.Reason != "":
		return fmt.Sprintf("up %s (%s)", strings.Join(v.Uplinks, ","), v.Reason)
	case v.Healthy:
		return "up " + strings.Join(v.Uplinks, ",")
	}
	return "down: " + v.Reason
}

// A step is one event at a time after t0, and the verdict after it.
type step struct {
	at time.Duration
	// One of: a probe over an uplink ("isp1", "" for success, else the
	// failure), a connection (hit or miss), the uplinks probed, a tick.
	probe, failure string
	hit, miss      bool
	// hit6 and fail6: a connection to an IPv6 destination, answered or
	// closed without a byte (Connection6).
	hit6, fail6 bool
	uplinks     []string
	tick        bool
	want        string
	// strict, when set, is what Strict must say after the step.
	strict string
}

func TestMachine(t *testing.T) {
	miss := step{miss: true}
	missing := func(at time.Duration, want string) step { return step{at: at, miss: true, want: want} }
	for _, tc := range []struct {
		name   string
		params Params
		steps  []step
	}{
		{"one uplink reaching the peer is enough", Params{}, []step{
			{probe: "isp1", want: "up isp1"},
			{probe: "isp2", failure: "connection refused", want: "up isp1"},
		}},
		{"no verdict until every uplink reported, or one reached", Params{}, []step{
			{want: "none"},
			{probe: "isp1", failure: "connection refused", want: "none"},
			{probe: "isp2", failure: "timed out", want: "down: not reached over isp1 (connection refused), isp2 (timed out)"},
			{probe: "isp2", want: "up isp2"},
		}},
		{"an uplink that reached stops after FailAfter failures in a row", Params{}, []step{
			{probe: "isp1", want: "up isp1"},
			{probe: "isp2", want: "up isp1,isp2"},
			{probe: "isp1", failure: "timed out", want: "up isp1,isp2"},
			{probe: "isp1", want: "up isp1,isp2"},
			{probe: "isp1", failure: "timed out", want: "up isp1,isp2"},
			{probe: "isp1", failure: "timed out", want: "up isp2"},
			{probe: "isp2", failure: "connection refused", want: "up isp2"},
			{probe: "isp2", failure: "connection refused", want: "down: not reached over isp1 (timed out), isp2 (connection refused)"},
			{probe: "isp1", want: "up isp1"},
		}},
		{"misses in a row put it down, an answer resets the count", Params{}, []step{
			{probe: "isp1", want: "up isp1", strict: "true"},
			{probe: "isp2", want: "up isp1,isp2"},
			{hit: true, want: "up isp1,isp2", strict: "false"},
			{miss: true, want: "up isp1,isp2", strict: "true"},
			{miss: true, want: "up isp1,isp2"},
			{hit: true, want: "up isp1,isp2", strict: "false"},
			miss, miss,
			missing(0, "down: no answer on 3 connections in a row"),
			// Probes that connect prove nothing of the key.
			{probe: "isp1", want: "down: no answer on 3 connections in a row", strict: "true"},
			// A late answer of a connection relayed before does.
			{hit: true, want: "up isp1,isp2", strict: "false"},
		}},
		{"trials after a backoff that doubles, and resets once answered", Params{}, []step{
			{probe: "isp1", want: "up isp1"},
			miss, miss,
			missing(10*time.Second, "down: no answer on 3 connections in a row"),
			{at: 39 * time.Second, tick: true, want: "down: no answer on 3 connections in a row"},
			{at: 40 * time.Second, tick: true, want: "up isp1 (on trial after no answer on 3 connections in a row)", strict: "true"},
			miss, miss,
			missing(50*time.Second, "down: no answer on 3 connections in a row"),
			{at: 109 * time.Second, tick: true, want: "down: no answer on 3 connections in a row"},
			{at: 110 * time.Second, tick: true, want: "up isp1 (on trial after no answer on 3 connections in a row)"},
			{at: 111 * time.Second, hit: true, want: "up isp1"},
			miss, miss,
			missing(120*time.Second, "down: no answer on 3 connections in a row"),
			{at: 149 * time.Second, tick: true, want: "down: no answer on 3 connections in a row"},
			{at: 150 * time.Second, tick: true, want: "up isp1 (on trial after no answer on 3 connections in a row)"},
		}},
		{"the backoff stops doubling at its maximum", Params{Misses: 1, Backoff: time.Minute, MaxBackoff: 3 * time.Minute}, []step{
			{probe: "isp1", want: "up isp1"},
			missing(0, "down: no answer on 1 connections in a row"),
			{at: time.Minute, tick: true, want: "up isp1 (on trial after no answer on 1 connections in a row)"},
			missing(time.Minute, "down: no answer on 1 connections in a row"),
			{at: 3 * time.Minute, tick: true, want: "up isp1 (on trial after no answer on 1 connections in a row)"},
			missing(3*time.Minute, "down: no answer on 1 connections in a row"),
			{at: 6*time.Minute - time.Second, tick: true, want: "down: no answer on 1 connections in a row"},
			{at: 6 * time.Minute, tick: true, want: "up isp1 (on trial after no answer on 1 connections in a row)"},
		}},
		{"end to end: a probe that got its answer brings it back, no trials", Params{EndToEnd: true}, []step{
			{probe: "isp1", want: "up isp1", strict: "false"},
			miss, miss,
			missing(0, "down: no answer on 3 connections in a row"),
			{at: time.Hour, tick: true, want: "down: no answer on 3 connections in a row"},
			{probe: "isp1", want: "up isp1", strict: "false"},
		}},
		{"IPv6 closed without a byte K times in a row goes direct, alone", Params{}, []step{
			{probe: "isp1", want: "up isp1"},
			{fail6: true, want: "up isp1"},
			{fail6: true, want: "up isp1"},
			{hit6: true, want: "up isp1"},
			{fail6: true, want: "up isp1"},
			{fail6: true, want: "up isp1"},
			// IPv4 answered between says nothing of IPv6.
			{hit: true, want: "up isp1", strict: "false"},
			{at: 10 * time.Second, fail6: true, want: "up isp1; IPv6 direct"},
			// Nor of the peer as a whole: no miss, no strictness.
			{hit: true, want: "up isp1; IPv6 direct", strict: "false"},
			{at: 39 * time.Second, tick: true, want: "up isp1; IPv6 direct"},
			{at: 40 * time.Second, tick: true, want: "up isp1; IPv6 on trial after the peer closed 3 IPv6 connections in a row without an answer"},
			{fail6: true}, {fail6: true},
			{at: 50 * time.Second, fail6: true, want: "up isp1; IPv6 direct"},
			{at: 109 * time.Second, tick: true, want: "up isp1; IPv6 direct"},
			{at: 110 * time.Second, tick: true, want: "up isp1; IPv6 on trial after the peer closed 3 IPv6 connections in a row without an answer"},
			{hit6: true, want: "up isp1"},
			{fail6: true}, {fail6: true},
			{at: 120 * time.Second, fail6: true, want: "up isp1; IPv6 direct"},
			{at: 149 * time.Second, tick: true, want: "up isp1; IPv6 direct"},
			{at: 150 * time.Second, tick: true, want: "up isp1; IPv6 on trial after the peer closed 3 IPv6 connections in a row without an answer"},
		}},
		{"IPv6's backoff stops doubling at its maximum, and end-to-end probes do not clear it", Params{Misses: 1, Backoff: time.Minute, MaxBackoff: 3 * time.Minute, EndToEnd: true}, []step{
			{probe: "isp1", want: "up isp1"},
			{fail6: true, want: "up isp1; IPv6 direct"},
			{probe: "isp1", want: "up isp1; IPv6 direct"},
			{at: time.Minute, tick: true, want: "up isp1; IPv6 on trial after the peer closed 1 IPv6 connections in a row without an answer"},
			{at: time.Minute, fail6: true, want: "up isp1; IPv6 direct"},
			{at: 3 * time.Minute, tick: true, want: "up isp1; IPv6 on trial after the peer closed 1 IPv6 connections in a row without an answer"},
			{at: 3 * time.Minute, fail6: true, want: "up isp1; IPv6 direct"},
			{at: 6*time.Minute - time.Second, tick: true, want: "up isp1; IPv6 direct"},
			{at: 6 * time.Minute, tick: true, want: "up isp1; IPv6 on trial after the peer closed 1 IPv6 connections in a row without an answer"},
		}},
		{"the uplinks probed change", Params{}, []step{
			{probe: "isp1", want: "up isp1"},
			{probe: "isp2", failure: "timed out", want: "up isp1"},
			{uplinks: []string{"isp2", "lte"}, want: "none"},
			{probe: "isp1", want: "none"},
			{probe: "lte", failure: "network is unreachable", want: "down: not reached over isp2 (timed out), lte (network is unreachable)"},
			{uplinks: []string{"isp1", "isp2", "lte"}, want: "none"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.params, []string{"isp1", "isp2"})
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				switch {
				case s.probe != "":
					m.Probed(s.probe, s.failure)
				case s.hit || s.miss:
					m.Connection(s.hit, now)
				case s.hit6 || s.fail6:
					m.Connection6(s.hit6, now)
				case s.uplinks != nil:
					m.SetUplinks(s.uplinks)
				case s.tick:
					m.Tick(now)
				}
				if s.want == "" {
					continue
				}
				if got := show(m.Verdict()); got != s.want {
					t.Fatalf("step %d (%+v): %s, want %s", i, s, got, s.want)
				}
				if s.strict != "" && fmt.Sprint(m.Strict()) != s.strict {
					t.Fatalf("step %d: Strict() = %v, want %s", i, m.Strict(), s.strict)
				}
			}
		})
	}
}

func TestRetryAt(t *testing.T) {
	m := New(Params{}, []string{"isp1"})
	m.Probed("isp1", "")
	if !m.RetryAt().IsZero() {
		t.Error("a retry is due for a healthy peer")
	}
	for range DefaultMisses {
		m.Connection(false, t0)
	}
	if got := m.RetryAt(); !got.Equal(t0.Add(DefaultBackoff)) {
		t.Errorf("RetryAt = %v, want %v", got, t0.Add(DefaultBackoff))
	}
	if !m.RetryAt6().IsZero() {
		t.Error("an IPv6 trial is due with IPv6 never judged")
	}
	for range DefaultMisses {
		m.Connection6(false, t0)
	}
	if got := m.RetryAt6(); !got.Equal(t0.Add(DefaultBackoff)) {
		t.Errorf("RetryAt6 = %v, want %v", got, t0.Add(DefaultBackoff))
	}
	m.SetParams(Params{EndToEnd: true})
	if !m.RetryAt().IsZero() {
		t.Error("end to end, a trial is due: the probe brings the peer back")
	}
	if u := m.Uplinks(); len(u) != 1 || !u[0].Reached || u[0].Err != "" {
		t.Errorf("Uplinks() = %+v", u)
	}
}
