package subflows

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	isp1v4 = netip.MustParseAddr("10.101.0.2")
	isp1v6 = netip.MustParseAddr("2001:db8:101::2")
	isp2v4 = netip.MustParseAddr("10.102.0.2")
	isp3v4 = netip.MustParseAddr("10.103.0.2")
	peer4  = netip.MustParseAddr("10.203.0.2")
	peer6  = netip.MustParseAddr("2001:db8:203::2")
)

// lab is the lab's two uplinks, both reaching the peer, each with an
// endpoint per family on isp1 and an IPv4 one on isp2.
func lab() []Uplink {
	return []Uplink{
		{Name: "isp1", Endpoints: []netip.Addr{isp1v4, isp1v6}, Reached: true},
		{Name: "isp2", Endpoints: []netip.Addr{isp2v4}, Reached: true},
	}
}

func TestJudge(t *testing.T) {
	sf := func(a netip.Addr, state uint8, retrans int) Subflow {
		return Subflow{Local: a, State: state, Retransmits: retrans}
	}
	unreached := lab()
	unreached[1].Reached = false
	firstUnreached := lab()
	firstUnreached[0].Reached = false
	three := append(lab(), Uplink{Name: "isp3", Endpoints: []netip.Addr{isp3v4}, Reached: true})
	for _, c := range []struct {
		name string
		conn Conn
		ups  []Uplink
		want []Outcome
	}{
		{"both uplinks carry a subflow", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0), sf(isp2v4, StateEstablished, 0)}}, lab(),
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinOK}}},
		{"the join is still sending its SYN, unanswered", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0), sf(isp2v4, StateSynSent, 2)}}, lab(),
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinUnanswered}}},
		{"the join sends its first SYN", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0), sf(isp2v4, StateSynSent, 0)}}, lab(),
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinPending}}},
		{"no join from isp2: refused or reset", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0)}}, lab(),
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinMissing}}},
		{"a join closed, never established", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0), sf(isp2v4, StateClose, 0)}}, lab(),
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinMissing}}},
		{"one join up, another retrying (fullmesh): ok", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0), sf(isp2v4, StateSynSent, 3), sf(isp2v4, StateFinWait1, 0)}}, lab(),
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinOK}}},
		{"the first subflow went over isp2", Conn{Local: isp2v4, Remote: peer4, Subflows: []Subflow{
			sf(isp2v4, StateEstablished, 0), sf(isp1v4, StateEstablished, 0)}}, lab(),
			[]Outcome{{"isp2", CapableOK}, {"isp1", JoinOK}}},
		{"fallen back: no join is judged", Conn{Local: isp1v4, Remote: peer4, Fallback: true}, lab(),
			[]Outcome{{"isp1", FellBack}}},
		{"an unreached uplink is not judged", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0)}}, unreached,
			[]Outcome{{"isp1", CapableOK}}},
		{"an unreached first uplink is not judged, the joins are", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0), sf(isp2v4, StateEstablished, 0)}}, firstUnreached,
			[]Outcome{{"isp2", JoinOK}}},
		{"IPv6: isp2 has no IPv6 endpoint", Conn{Local: isp1v6, Remote: peer6, Subflows: []Subflow{
			sf(isp1v6, StateEstablished, 0)}}, lab(),
			[]Outcome{{"isp1", CapableOK}}},
		{"a first subflow from no uplink's endpoint", Conn{Local: netip.MustParseAddr("192.0.2.9"), Remote: peer4, Fallback: true}, lab(),
			nil},
		{"three uplinks, one failing", Conn{Local: isp1v4, Remote: peer4, Subflows: []Subflow{
			sf(isp1v4, StateEstablished, 0), sf(isp3v4, StateEstablished, 0)}}, three,
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinMissing}, {"isp3", JoinOK}}},
		{"4in6 addresses", Conn{Local: netip.MustParseAddr("::ffff:10.101.0.2"), Remote: netip.MustParseAddr("::ffff:10.203.0.2"), Subflows: []Subflow{
			sf(netip.MustParseAddr("::ffff:10.102.0.2"), StateEstablished, 0)}}, lab(),
			[]Outcome{{"isp1", CapableOK}, {"isp2", JoinOK}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Judge(c.conn, c.ups); !slices.Equal(got, c.want) {
				t.Errorf("Judge = %v, want %v", got, c.want)
			}
		})
	}
}

func TestMachine(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 5, 9, 40, 0, time.UTC)
	type step struct {
		o Outcome
		// want is isp2's verdict's summary after o.
		want string
	}
	for _, c := range []struct {
		name  string
		steps []step
		// problem is isp2's problem at the end; explain what its
		// explanation must hold.
		problem Problem
		explain string
	}{
		{"healthy: never flagged", []step{
			{Outcome{"isp2", JoinOK}, "isp2 ok (1 subflow)"},
			{Outcome{"isp2", JoinOK}, "isp2 ok (2 subflows)"},
			{Outcome{"isp2", JoinPending}, "isp2 ok (2 subflows)"},
			{Outcome{"isp1", JoinMissing}, "isp2 ok (2 subflows)"},
		}, None, ""},
		{"joins unanswered three times in a row", []step{
			{Outcome{"isp2", JoinUnanswered}, "isp2 failed on 1 connection so far"},
			{Outcome{"isp2", JoinUnanswered}, "isp2 failed on 2 connections so far"},
			{Outcome{"isp2", JoinUnanswered}, "isp2 joins fail"},
		}, JoinsFail, "isp2: MPTCP subflows to the peer do not establish over isp2: the joins of 3 connections in a row got no answer (since 05:09:40)"},
		{"joins reset at once", []step{
			{Outcome{"isp2", JoinMissing}, "isp2 failed on 1 connection so far"},
			{Outcome{"isp2", JoinMissing}, "isp2 failed on 2 connections so far"},
			{Outcome{"isp2", JoinMissing}, "isp2 joins fail"},
			{Outcome{"isp2", JoinMissing}, "isp2 joins fail"},
		}, JoinsFail, "the joins of 4 connections in a row were refused or reset at once (since 05:09:40), while plain TCP reaches the peer over it.\n  Something on isp2's path (the ISP, its modem, a firewall) strips MPTCP options from TCP SYNs"},
		{"a success clears the flag", []step{
			{Outcome{"isp2", JoinMissing}, "isp2 failed on 1 connection so far"},
			{Outcome{"isp2", JoinMissing}, "isp2 failed on 2 connections so far"},
			{Outcome{"isp2", JoinMissing}, "isp2 joins fail"},
			{Outcome{"isp2", JoinOK}, "isp2 ok (1 subflow)"},
			{Outcome{"isp2", JoinMissing}, "isp2 ok (1 subflow, then 1 failed)"},
		}, None, ""},
		{"failures broken by a success are not in a row", []step{
			{Outcome{"isp2", JoinMissing}, "isp2 failed on 1 connection so far"},
			{Outcome{"isp2", JoinMissing}, "isp2 failed on 2 connections so far"},
			{Outcome{"isp2", JoinOK}, "isp2 ok (1 subflow)"},
			{Outcome{"isp2", JoinMissing}, "isp2 ok (1 subflow, then 1 failed)"},
			{Outcome{"isp2", JoinUnanswered}, "isp2 ok (1 subflow, then 2 failed)"},
		}, None, ""},
		{"first subflows fall back", []step{
			{Outcome{"isp2", CapableOK}, "isp2 ok (1 subflow)"},
			{Outcome{"isp2", FellBack}, "isp2 ok (1 subflow, then 1 failed)"},
			{Outcome{"isp2", FellBack}, "isp2 ok (1 subflow, then 2 failed)"},
			{Outcome{"isp2", FellBack}, "isp2 falls back to plain TCP"},
		}, FallsBack, "isp2: Multipath TCP fell back to plain TCP on 3 connections in a row whose first subflow went over isp2 (since 05:09:41)"},
		{"nothing seen", []step{
			{Outcome{"isp1", JoinOK}, "isp2 not seen yet"},
		}, None, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New(Params{})
			now := t0
			for i, s := range c.steps {
				m.Record(s.o, now)
				if got := m.Verdict("isp2").Summary(); got != s.want {
					t.Errorf("after step %d (%v): %q, want %q", i, s.o, got, s.want)
				}
				now = now.Add(time.Second)
			}
			v := m.Verdict("isp2")
			if v.Problem != c.problem {
				t.Errorf("problem %v, want %v", v.Problem, c.problem)
			}
			got := v.Explain()
			if (got == "") != (c.explain == "") || !strings.Contains(got, c.explain) {
				t.Errorf("Explain:\n%s\nwant it to hold %q", got, c.explain)
			}
		})
	}
}

// Forget and Keep drop an uplink's evidence: flagged, then down, it
// comes back unjudged.
func TestForget(t *testing.T) {
	m := New(Params{FailAfter: 2})
	now := time.Now()
	for range 2 {
		m.Record(Outcome{"isp2", JoinMissing}, now)
		m.Record(Outcome{"isp1", CapableOK}, now)
	}
	if v := m.Verdict("isp2"); v.Problem != JoinsFail {
		t.Fatalf("isp2 after 2 failures with FailAfter 2: %+v", v)
	}
	m.Forget("isp2")
	if v := m.Verdict("isp2"); v.Known || v.Problem != None {
		t.Errorf("isp2 forgotten: %+v", v)
	}
	m.Keep([]string{"isp2"})
	if v := m.Verdict("isp1"); v.Known {
		t.Errorf("isp1 not kept: %+v", v)
	}
	if got := Summaries([]Verdict{m.Verdict("isp1"), {Uplink: "isp2", Known: true, OK: 3}}); got != "isp1 not seen yet, isp2 ok (3 subflows)" {
		t.Errorf("Summaries = %q", got)
	}
}
