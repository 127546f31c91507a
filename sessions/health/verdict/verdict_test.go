package verdict

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ok and fail are rounds; up and down carrier events.
var (
	ok   = Round{OK: true, RTT: 2 * time.Millisecond, Detail: "icmp 192.0.2.1 answered"}
	fail = Round{Detail: "icmp 192.0.2.1: no echo reply"}
	// unsent is a round none of whose probes could leave: the uplink
	// has no address of their family yet.
	unsent = Round{Unsent: true, Detail: "probe icmp 192.0.2.1: not sent: no IPv4 source address to probe from (sources [2001:db8::2])"}
	up     = Carrier{Up: true}
	down   = Carrier{Up: false}
)

// step is one event of a scenario and what must follow it: the verdict
// after it, and the transition it makes ("" none, "healthy", "unhealthy").
type step struct {
	e       Event
	healthy bool
	change  string
}

func TestStep(t *testing.T) {
	p := Params{FailAfter: 3, RecoverAfter: 2}
	tests := []struct {
		name    string
		carrier bool
		steps   []step
	}{
		{"good rounds keep it healthy", true, []step{{ok, true, ""}, {ok, true, ""}, {ok, true, ""}}},
		{"failAfter failed rounds in a row", true, []step{{fail, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"}, {fail, false, ""}}},
		{"a good round resets the count", true, []step{{fail, true, ""}, {fail, true, ""}, {ok, true, ""}, {fail, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"}}},
		{"recoverAfter good rounds in a row", true, []step{
			{fail, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"},
			{ok, false, ""}, {fail, false, ""}, {ok, false, ""}, {ok, true, "healthy"}, {ok, true, ""},
		}},
		{"carrier loss counts at once", true, []step{{ok, true, ""}, {down, false, "unhealthy"}, {down, false, ""}}},
		{"no recovery without carrier", true, []step{{down, false, "unhealthy"}, {ok, false, ""}, {ok, false, ""}, {ok, false, ""}}},
		{"carrier back: recoverAfter rounds still needed", true, []step{
			{down, false, "unhealthy"}, {fail, false, ""}, {up, false, ""}, {ok, false, ""}, {ok, true, "healthy"},
		}},
		{"rounds before the carrier came back do not count", true, []step{
			{fail, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"}, {ok, false, ""},
			{down, false, ""}, {up, false, ""}, {ok, false, ""}, {ok, true, "healthy"},
		}},
		{"an answer without carrier does not fail either", true, []step{
			{down, false, "unhealthy"}, {up, false, ""}, {ok, false, ""}, {down, false, ""}, {ok, false, ""}, {up, false, ""}, {ok, false, ""}, {ok, true, "healthy"},
		}},
		{"starts unhealthy without carrier", false, []step{{ok, false, ""}, {up, false, ""}, {ok, false, ""}, {ok, true, "healthy"}}},
		{"carrier flap while unhealthy makes no transition", true, []step{
			{fail, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"}, {down, false, ""}, {up, false, ""},
		}},
		{"rounds not sent at the start fail nothing: the first ones sent decide", true, []step{
			{unsent, true, ""}, {unsent, true, ""}, {unsent, true, ""}, {unsent, true, ""}, {unsent, true, ""},
			{fail, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"},
		}},
		{"rounds not sent at the start, then answers: healthy all along", true, []step{
			{unsent, true, ""}, {unsent, true, ""}, {unsent, true, ""}, {unsent, true, ""}, {ok, true, ""}, {ok, true, ""},
		}},
		{"rounds not sent do not end a run of failures", true, []step{
			{fail, true, ""}, {fail, true, ""}, {unsent, true, ""}, {unsent, true, ""}, {fail, false, "unhealthy"},
		}},
		{"rounds not sent recover nothing and break a run of answers", true, []step{
			{fail, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"},
			{unsent, false, ""}, {unsent, false, ""}, {unsent, false, ""},
			{ok, false, ""}, {unsent, false, ""}, {ok, false, ""}, {ok, true, "healthy"},
		}},
		{"without carrier and without an address", false, []step{
			{unsent, false, ""}, {up, false, ""}, {unsent, false, ""}, {ok, false, ""}, {ok, true, "healthy"},
		}},
		{"a repeated carrier event changes nothing", true, []step{{up, true, ""}, {up, true, ""}, {fail, true, ""}, {up, true, ""}, {fail, true, ""}, {fail, false, "unhealthy"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(p, tt.carrier, t0)
			if s.Healthy != tt.carrier {
				t.Fatalf("New with carrier %v: healthy %v", tt.carrier, s.Healthy)
			}
			now := t0
			for i, st := range tt.steps {
				now = now.Add(500 * time.Millisecond)
				var tr *Transition
				s, tr = Step(s, st.e, now)
				got := ""
				if tr != nil {
					got = tr.Direction()
					if tr.At != now || tr.Healthy != s.Healthy || tr.Reason != s.Reason || s.Since != now {
						t.Errorf("step %d: transition %+v, state healthy=%v reason=%q since=%v", i, *tr, s.Healthy, s.Reason, s.Since)
					}
				}
				if s.Healthy != st.healthy || got != st.change {
					t.Fatalf("step %d (%#v): healthy %v, transition %q; want %v, %q", i, st.e, s.Healthy, got, st.healthy, st.change)
				}
			}
		})
	}
}

func TestReasons(t *testing.T) {
	p := Params{FailAfter: 2, RecoverAfter: 1}
	s := New(p, true, t0)
	if !strings.HasPrefix(s.Reason, "starting") {
		t.Errorf("starting reason %q", s.Reason)
	}
	s, _ = Step(s, fail, t0)
	s, tr := Step(s, fail, t0)
	if tr == nil || tr.Reason != "2 rounds failed in a row: icmp 192.0.2.1: no echo reply" {
		t.Errorf("failure: %+v", tr)
	}
	s, tr = Step(s, ok, t0)
	if tr == nil || tr.Reason != "1 rounds answered in a row: icmp 192.0.2.1 answered" {
		t.Errorf("recovery: %+v", tr)
	}
	_, tr = Step(s, down, t0)
	if tr == nil || tr.Reason != "carrier lost" {
		t.Errorf("carrier: %+v", tr)
	}
	if s := New(p, false, t0); s.Reason != "no carrier" {
		t.Errorf("starting without carrier: %q", s.Reason)
	}
}

func TestParamsAtLeastOne(t *testing.T) {
	s := New(Params{}, true, t0)
	if s, tr := Step(s, fail, t0); tr == nil || s.Healthy {
		t.Errorf("FailAfter 0 acts as 1: %+v", tr)
	}
	s = s.WithParams(Params{FailAfter: 5, RecoverAfter: -1})
	if s.Params != (Params{FailAfter: 5, RecoverAfter: 1}) {
		t.Errorf("WithParams: %+v", s.Params)
	}
}

func TestWithParamsKeepsCounts(t *testing.T) {
	s := New(Params{FailAfter: 5, RecoverAfter: 5}, true, t0)
	for range 3 {
		s, _ = Step(s, fail, t0)
	}
	s = s.WithParams(Params{FailAfter: 3, RecoverAfter: 5})
	if !s.Healthy || s.Failed != 3 {
		t.Fatalf("after WithParams: healthy %v failed %d", s.Healthy, s.Failed)
	}
	if s, tr := Step(s, fail, t0); tr == nil || s.Healthy {
		t.Errorf("the next failed round must count against the new threshold")
	}
}

func TestStats(t *testing.T) {
	s := New(Params{FailAfter: 100, RecoverAfter: 1}, true, t0)
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("no rounds: %+v", st)
	}
	if d := s.Describe(t0.Add(90 * time.Second)); d != "healthy for 1m30s (starting: healthy until rounds fail); no round yet" {
		t.Errorf("Describe: %q", d)
	}
	// 30 rounds: the first 10 answer slowly and fall out of the window;
	// of the last 20, 6 fail and the others answer in 1..14 ms.
	for i := range 10 {
		s, _ = Step(s, Round{OK: true, RTT: time.Second + time.Duration(i)}, t0)
	}
	rtt := time.Duration(0)
	for i := range 20 {
		r := fail
		if i%10 >= 3 {
			rtt += time.Millisecond
			r = Round{OK: true, RTT: rtt}
		}
		s, _ = Step(s, r, t0)
	}
	st := s.Stats()
	if st.Rounds != Window || st.Loss != 0.3 || st.MedianRTT != 8*time.Millisecond || st.MaxRTT != 14*time.Millisecond {
		t.Errorf("stats %+v", st)
	}
	if got := len(s.Recent()); got != Window {
		t.Errorf("Recent: %d rounds", got)
	}
	want := "healthy for 0s (starting: healthy until rounds fail); last 20 rounds: loss 30%, rtt median 8ms max 14ms"
	if d := s.Describe(t0); d != want {
		t.Errorf("Describe:\n got %q\nwant %q", d, want)
	}
	s, _ = Step(s, down, t0)
	if d := s.Describe(t0); !strings.Contains(d, "unhealthy for 0s (carrier lost); no carrier; last 20 rounds") {
		t.Errorf("Describe without carrier: %q", d)
	}
}

// TestRecentOrder: the window keeps the newest rounds, oldest first.
func TestRecentOrder(t *testing.T) {
	s := New(Params{FailAfter: 1000, RecoverAfter: 1}, true, t0)
	for i := range Window + 7 {
		s, _ = Step(s, Round{OK: true, RTT: time.Duration(i)}, t0)
		r := s.Recent()
		if len(r) != min(i+1, Window) || r[len(r)-1].RTT != time.Duration(i) || r[0].RTT != time.Duration(max(0, i+1-Window)) {
			t.Fatalf("after round %d: %v", i, r)
		}
	}
}

// Test1000Flaps drives the machine through 1,000 flaps, half by rounds and
// half by carrier, with random rounds between them: every transition
// alternates, none comes without its cause, the counts agree, and the
// final state is what the last events say.
func Test1000Flaps(t *testing.T) {
	p := Params{FailAfter: 3, RecoverAfter: 5}
	rng := rand.New(rand.NewPCG(1, 2))
	s := New(p, true, t0)
	now := t0
	transitions := 0
	feed := func(e Event) *Transition {
		now = now.Add(500 * time.Millisecond)
		var tr *Transition
		prev := s
		s, tr = Step(s, e, now)
		if tr != nil {
			transitions++
			if tr.Healthy == prev.Healthy {
				t.Fatalf("transition to the verdict it had: %+v", tr)
			}
		} else if s.Healthy != prev.Healthy {
			t.Fatalf("verdict changed without a transition after %#v", e)
		}
		return tr
	}
	for flap := range 1000 {
		// Noise that must not change the verdict: fewer failures in a
		// row than FailAfter.
		for range rng.IntN(10) {
			if rng.IntN(2) == 0 {
				feed(ok)
			} else {
				feed(fail)
				feed(ok)
			}
		}
		if !s.Healthy {
			t.Fatalf("flap %d: unhealthy after noise", flap)
		}
		// Down, by rounds or by carrier.
		byCarrier := flap%2 == 1
		if byCarrier {
			if tr := feed(down); tr == nil || tr.Reason != "carrier lost" {
				t.Fatalf("flap %d: carrier loss gave %+v", flap, tr)
			}
			for range rng.IntN(5) {
				feed(fail)
			}
			if feed(up) != nil {
				t.Fatalf("flap %d: carrier back made a transition", flap)
			}
		} else {
			for i := range p.FailAfter {
				tr := feed(fail)
				if (tr != nil) != (i == p.FailAfter-1) {
					t.Fatalf("flap %d: failed round %d gave %+v", flap, i, tr)
				}
			}
		}
		// Up after exactly RecoverAfter good rounds.
		for i := range p.RecoverAfter {
			tr := feed(ok)
			if (tr != nil) != (i == p.RecoverAfter-1) {
				t.Fatalf("flap %d: good round %d gave %+v (healthy %v)", flap, i, tr, s.Healthy)
			}
		}
	}
	if transitions != 2000 || s.Transitions != 2000 {
		t.Errorf("transitions: counted %d, state says %d, want 2000", transitions, s.Transitions)
	}
	if !s.Healthy || !s.Carrier || s.Failed != 0 || s.Passed != p.RecoverAfter {
		t.Errorf("final state: %+v", s)
	}
	if got := fmt.Sprint(s.Stats().Rounds); got != fmt.Sprint(Window) {
		t.Errorf("window: %s rounds", got)
	}
}

// Silence: FailAfter x Interval without an answer makes the uplink
// unhealthy, counted from the last answer (or the start), whether a Tick
// or a failed round brings the news.
func TestSilence(t *testing.T) {
	p := Params{FailAfter: 3, RecoverAfter: 2, Interval: 500 * time.Millisecond}
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	s := New(p, true, t0)
	if d := s.Deadline(); d != ms(1500) {
		t.Errorf("deadline at the start: %v", d)
	}
	s, _ = Step(s, ok, ms(510))
	if d := s.Deadline(); d != ms(2010) {
		t.Errorf("deadline after an answer at 510 ms: %v", d)
	}
	s, tr := Step(s, Tick{}, ms(2009))
	if tr != nil || !s.Healthy {
		t.Fatalf("a tick before the deadline: %+v", tr)
	}
	// Two failed rounds: not yet FailAfter, but silence has lasted 1.5 s.
	s, _ = Step(s, fail, ms(1500))
	s, tr = Step(s, Tick{}, ms(2010))
	if tr == nil || s.Healthy || tr.Reason != "no answer for 1.5s: icmp 192.0.2.1: no echo reply" {
		t.Fatalf("the tick at the deadline: %+v", tr)
	}
	if !s.Deadline().IsZero() {
		t.Errorf("an unhealthy uplink has no deadline: %v", s.Deadline())
	}
	if _, tr := Step(s, Tick{}, ms(9000)); tr != nil {
		t.Errorf("a tick while unhealthy: %+v", tr)
	}
	// Recovery as before; the deadline then counts from the last answer.
	s, _ = Step(s, ok, ms(2500))
	s, tr = Step(s, ok, ms(3000))
	if tr == nil || !s.Healthy || s.Deadline() != ms(4500) {
		t.Fatalf("recovery: %+v, deadline %v", tr, s.Deadline())
	}
	// A failed round that comes after the deadline reports it too.
	s, tr = Step(s, fail, ms(4600))
	if tr == nil || s.Healthy || !strings.HasPrefix(tr.Reason, "no answer for 1.6s: ") {
		t.Errorf("a failed round past the deadline: %+v", tr)
	}
	// Without Interval, only the rounds' count.
	s = New(Params{FailAfter: 3, RecoverAfter: 2}, true, t0)
	if _, tr := Step(s, Tick{}, ms(100000)); tr != nil || !s.Deadline().IsZero() {
		t.Errorf("silence without an interval: %+v", tr)
	}
}

// An uplink whose address comes after its tracker started (a DHCP lease,
// adverts): rounds that cannot leave are no evidence and silence is not
// counted while it waits; its first rounds sent decide. One that loses its
// address after answering still goes unhealthy by silence.
func TestUnsentRounds(t *testing.T) {
	p := Params{FailAfter: 3, RecoverAfter: 2, Interval: 500 * time.Millisecond}
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// waitFor feeds n unsent rounds, one per interval from `from` ms, and
	// a Tick at each deadline: none may change the verdict.
	waitFor := func(s State, from, n int) State {
		t.Helper()
		for i := range n {
			now := ms(from + 500*i)
			var tr *Transition
			if s, tr = Step(s, unsent, now); tr != nil {
				t.Fatalf("unsent round at %v: %+v", now.Sub(t0), tr)
			}
			if d := s.Deadline(); !d.IsZero() && !d.After(now) {
				t.Fatalf("deadline %v not after the round not sent at %v", d.Sub(t0), now.Sub(t0))
			}
			if s, tr = Step(s, Tick{}, now.Add(499*time.Millisecond)); tr != nil {
				t.Fatalf("tick before the next round: %+v", tr)
			}
		}
		return s
	}

	t.Run("lease arrives, answers", func(t *testing.T) {
		s := waitFor(New(p, true, t0), 0, 20) // 10 s without an address
		if !s.Healthy || !s.Waiting || s.Unsent != 20 || s.Transitions != 0 || s.Stats().Rounds != 0 {
			t.Fatalf("after 10 s without an address: %+v", s)
		}
		d := s.Describe(ms(10000))
		if !strings.HasPrefix(d, "unknown for 10s (waiting for an address to probe from: 20 rounds not sent: probe icmp 192.0.2.1: not sent: no IPv4 source address") {
			t.Errorf("Describe while waiting: %q", d)
		}
		s, tr := Step(s, ok, ms(10000))
		if tr != nil || !s.Healthy || s.Waiting || s.Unsent != 0 || s.Deadline() != ms(11500) {
			t.Fatalf("first answer: %+v, state %+v", tr, s)
		}
		if d := s.Describe(ms(10000)); !strings.HasPrefix(d, "healthy for 10s (starting: healthy until rounds fail); last 1 rounds: loss 0%") {
			t.Errorf("Describe after the first answer: %q", d)
		}
	})
	t.Run("lease arrives, path dead", func(t *testing.T) {
		s := waitFor(New(p, true, t0), 0, 20)
		// The last round not sent was at 9.5 s: silence counts from there,
		// and the first rounds sent fail.
		s, tr := Step(s, fail, ms(10000))
		if tr != nil || !s.Healthy || s.Waiting || s.Deadline() != ms(11000) {
			t.Fatalf("first failed round: %+v, deadline %v", tr, s.Deadline().Sub(t0))
		}
		s, tr = Step(s, Tick{}, ms(11000))
		if tr == nil || s.Healthy || tr.Reason != "no answer for 1.5s: icmp 192.0.2.1: no echo reply" {
			t.Fatalf("silence after the first rounds sent: %+v", tr)
		}
	})
	t.Run("address lost after answering", func(t *testing.T) {
		s := New(p, true, t0)
		s, _ = Step(s, ok, ms(500))
		s, _ = Step(s, ok, ms(1000))
		s, tr := Step(s, unsent, ms(1500))
		s, tr2 := Step(s, unsent, ms(2000))
		if tr != nil || tr2 != nil || !s.Healthy || s.Waiting || s.Deadline() != ms(2500) {
			t.Fatalf("address just lost: %+v %+v, deadline %v", tr, tr2, s.Deadline().Sub(t0))
		}
		if d := s.Describe(ms(2000)); !strings.Contains(d, "healthy for 2s (starting: healthy until rounds fail); 2 rounds not sent: probe icmp 192.0.2.1: not sent") {
			t.Errorf("Describe with the address lost: %q", d)
		}
		s, tr = Step(s, unsent, ms(2500))
		if tr == nil || s.Healthy || !strings.HasPrefix(tr.Reason, "no answer for 1.5s: probe icmp 192.0.2.1: not sent") {
			t.Fatalf("silence without an address: %+v", tr)
		}
		// Back: RecoverAfter answered rounds, as for any unhealthy uplink.
		s = waitFor(s, 3000, 4)
		if s.Healthy {
			t.Fatal("recovered without an answer")
		}
		s, tr = Step(s, ok, ms(5000))
		if tr != nil {
			t.Fatalf("one answer: %+v", tr)
		}
		if s, tr = Step(s, ok, ms(5500)); tr == nil || !s.Healthy {
			t.Fatalf("RecoverAfter answers: %+v", tr)
		}
	})
}
