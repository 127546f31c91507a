// Package subflows judges, per uplink, whether Multipath TCP subflows to
// the aggregation peer establish over it, from what the kernel says of the
// connections the proxy relays: it is how `braid status` tells an uplink
// whose ISP strips or drops MPTCP options. It is pure: no sockets, no
// clock but the times it is given; the proxy session reads the kernel
// (MPTCP_FULL_INFO on its own connections) and the peer's probes.
//
// What a connection says (Judge). The proxy dials the peer by the box's
// routing, so its first subflow leaves by one uplink (the one whose
// endpoint address is the connection's local address); once the
// connection is established, the kernel's path manager opens a join (a
// SYN with MP_JOIN) from each other endpoint of the connection's family.
// Looked at a few seconds after the peer first answered:
//
//   - the connection fell back to plain TCP: the peer answered its first
//     subflow without MP_CAPABLE (FellBack, of the first subflow's uplink);
//     nothing else is judged, since the kernel opens no join then;
//   - else MPTCP holds over the first subflow's uplink (CapableOK) and, for
//     each other uplink with an endpoint of that family: a subflow from it
//     established (JoinOK); one still sending its SYN that went unanswered
//     at least once (JoinUnanswered: something drops the SYN); one sending
//     its first SYN (JoinPending: look again later); none (JoinMissing:
//     the join was refused or reset at once, as when the peer got the SYN
//     without its MP_JOIN option and answered it as plain TCP).
//
// An uplink that plain TCP does not reach the peer over (Uplink.Reached,
// the peer's probes) is not judged: it is down for other reasons, which
// are not MPTCP's.
//
// What the outcomes add up to (Machine). An uplink is flagged after
// Params.FailAfter connections in a row whose join over it failed, or
// whose first subflow over it fell back, with no success between: a
// healthy uplink, whose joins establish, never is, and one success clears
// the flag.
package subflows

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TCP states of a subflow (the kernel's tcpi_state).
const (
	StateEstablished = 1
	StateSynSent     = 2
	StateFinWait1    = 4
	StateFinWait2    = 5
	StateTimeWait    = 6
	StateClose       = 7
	StateCloseWait   = 8
	StateLastAck     = 9
	StateClosing     = 11
)

// Subflow is one TCP subflow of a connection, as the kernel reports it.
type Subflow struct {
	// Local is the subflow's local address: an uplink's endpoint.
	Local netip.Addr
	// State is its TCP state (tcpi_state).
	State uint8
	// Retransmits counts the retransmissions of the segment it waits to
	// have acknowledged (tcpi_retransmits): for one in SynSent, how many
	// times its SYN went unanswered.
	Retransmits int
}

// established reports whether the subflow got past its handshake: it is
// established, or closing after it was.
func (s Subflow) established() bool {
	switch s.State {
	case StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait, StateLastAck, StateClosing:
		return true
	}
	return false
}

// Conn is one of the proxy's connections to the peer, as the kernel
// reports it.
type Conn struct {
	// Local and Remote are the connection's addresses: its first
	// subflow's.
	Local, Remote netip.Addr
	// Fallback is set when the connection fell back to plain TCP.
	Fallback bool
	// Subflows are its subflows, in any state (none when Fallback).
	Subflows []Subflow
}

// Uplink is an uplink the proxy's connections may use.
type Uplink struct {
	// Name is the uplink's name.
	Name string
	// Endpoints are the addresses of its MPTCP endpoints: the kernel
	// opens a join from each, and a subflow from one is the uplink's.
	Endpoints []netip.Addr
	// Reached is set while plain TCP reaches the peer over the uplink
	// (the peer's probes): only then is it judged.
	Reached bool
}

// owns reports whether a is one of u's endpoints.
func (u Uplink) owns(a netip.Addr) bool {
	return a.IsValid() && slices.Contains(u.Endpoints, a.Unmap())
}

// hasFamily reports whether u has an endpoint of a's family.
func (u Uplink) hasFamily(a netip.Addr) bool {
	return slices.ContainsFunc(u.Endpoints, func(e netip.Addr) bool { return e.Is4() == a.Unmap().Is4() })
}

// Result is what a connection says of one uplink.
type Result int

// Results.
const (
	// JoinOK: a subflow from the uplink established.
	JoinOK Result = iota + 1
	// JoinPending: the uplink's join sends its first SYN; look again.
	JoinPending
	// JoinUnanswered: the uplink's join is still sending its SYN, which
	// went unanswered at least once.
	JoinUnanswered
	// JoinMissing: no subflow from the uplink: its join was refused or
	// reset at once.
	JoinMissing
	// CapableOK: the connection's first subflow, over the uplink, is
	// Multipath TCP.
	CapableOK
	// FellBack: the connection's first subflow, over the uplink, fell
	// back to plain TCP.
	FellBack
)

// failed reports whether r is a failure.
func (r Result) failed() bool { return r == JoinUnanswered || r == JoinMissing || r == FellBack }

// Outcome is what a connection says of one uplink.
type Outcome struct {
	Uplink string
	Result Result
}

// Judge returns what c says of each uplink of ups that plain TCP reaches
// the peer over (see the package's documentation). Uplinks it says
// nothing of are left out.
func Judge(c Conn, ups []Uplink) []Outcome {
	var out []Outcome
	first := slices.IndexFunc(ups, func(u Uplink) bool { return u.owns(c.Local) })
	if first >= 0 && ups[first].Reached {
		r := CapableOK
		if c.Fallback {
			r = FellBack
		}
		out = append(out, Outcome{ups[first].Name, r})
	}
	if c.Fallback {
		return out
	}
	for i, u := range ups {
		if i == first || !u.Reached || !u.hasFamily(c.Remote) {
			continue
		}
		r := JoinMissing
		for _, s := range c.Subflows {
			if !u.owns(s.Local) {
				continue
			}
			switch {
			case s.established():
				r = JoinOK
			case s.State == StateSynSent && r != JoinOK:
				r = JoinPending
				if s.Retransmits > 0 {
					r = JoinUnanswered
				}
			}
		}
		out = append(out, Outcome{u.Name, r})
	}
	return out
}

// DefaultFailAfter is Params.FailAfter's default.
const DefaultFailAfter = 3

// Params are the machine's thresholds.
type Params struct {
	// FailAfter is how many connections in a row must fail over an
	// uplink (their joins, or their first subflows) to flag it.
	FailAfter int
}

// Machine adds up the outcomes of the proxy's connections, per uplink.
// The zero value is not ready: use New.
type Machine struct {
	params Params
	ups    map[string]*uplink
}

// uplink is what the outcomes said of one uplink.
type uplink struct {
	// ok counts the subflows seen established over it: joins, and first
	// subflows that held Multipath TCP.
	ok int
	// failed counts failures in a row, since the last success; last is
	// the latest failure's result, since the first of the run and at
	// the latest.
	failed      int
	last        Result
	since, then time.Time
}

// New returns a machine with p's thresholds (zero fields: defaults).
func New(p Params) *Machine {
	p.FailAfter = cmp.Or(p.FailAfter, DefaultFailAfter)
	return &Machine{params: p, ups: map[string]*uplink{}}
}

// Record adds o, observed at now. JoinPending adds nothing.
func (m *Machine) Record(o Outcome, now time.Time) {
	if o.Result == JoinPending || o.Result == 0 {
		return
	}
	u := m.ups[o.Uplink]
	if u == nil {
		u = &uplink{}
		m.ups[o.Uplink] = u
	}
	if !o.Result.failed() {
		u.ok++
		u.failed, u.last, u.since, u.then = 0, 0, time.Time{}, time.Time{}
		return
	}
	if u.failed == 0 {
		u.since = now
	}
	u.failed++
	u.last, u.then = o.Result, now
}

// Forget drops what was found of the uplink named name: it went down,
// or plain TCP stopped reaching the peer over it, and what comes after
// starts anew.
func (m *Machine) Forget(name string) { delete(m.ups, name) }

// Keep forgets every uplink but those named.
func (m *Machine) Keep(names []string) {
	for n := range m.ups {
		if !slices.Contains(names, n) {
			delete(m.ups, n)
		}
	}
}

// Problem is what is wrong with an uplink's MPTCP.
type Problem int

// Problems.
const (
	// None: nothing found wrong (Verdict.Known says whether anything was
	// found at all).
	None Problem = iota
	// JoinsFail: the joins over the uplink never establish.
	JoinsFail
	// FallsBack: connections whose first subflow goes over the uplink
	// fall back to plain TCP.
	FallsBack
)

// Verdict is the machine's judgement of one uplink.
type Verdict struct {
	Uplink string
	// Known is set once a connection said something of it.
	Known   bool
	Problem Problem
	// OK counts the subflows seen established over it; Failed the
	// failures in a row since, the latest of which was Last, between
	// Since and Then.
	OK     int
	Failed int
	Last   Result
	Since  time.Time
	Then   time.Time
}

// Verdict returns the verdict on the uplink named name.
func (m *Machine) Verdict(name string) Verdict {
	v := Verdict{Uplink: name}
	u := m.ups[name]
	if u == nil {
		return v
	}
	v.Known, v.OK, v.Failed, v.Last, v.Since, v.Then = true, u.ok, u.failed, u.last, u.since, u.then
	if u.failed >= m.params.FailAfter {
		v.Problem = JoinsFail
		if u.last == FellBack {
			v.Problem = FallsBack
		}
	}
	return v
}

// Flagged reports whether the verdict flags the uplink.
func (v Verdict) Flagged() bool { return v.Problem != None }

// Summary says the verdict in a few words: "isp1 ok (4 subflows)",
// "isp1 ok (4 subflows, then 1 failed)", "isp2 failed on 2 connections so
// far", "isp2 joins fail", "isp1 falls back to plain TCP", "isp2 not seen
// yet".
func (v Verdict) Summary() string {
	switch {
	case !v.Known:
		return v.Uplink + " not seen yet"
	case v.Problem == JoinsFail:
		return v.Uplink + " joins fail"
	case v.Problem == FallsBack:
		return v.Uplink + " falls back to plain TCP"
	}
	if v.OK == 0 {
		return v.Uplink + " failed on " + count(v.Failed, "connection") + " so far"
	}
	s := v.Uplink + " ok (" + count(v.OK, "subflow")
	if v.Failed > 0 {
		s += ", then " + strconv.Itoa(v.Failed) + " failed"
	}
	return s + ")"
}

// Explain says, for a flagged uplink, what the problem means and what to
// try, in three lines (separated by "\n  "): the evidence, what it means,
// what to try; "" when nothing is wrong.
func (v Verdict) Explain() string {
	n, since, u := count(v.Failed, "connection"), v.Since.Format(time.TimeOnly), v.Uplink
	switch v.Problem {
	case JoinsFail:
		how, what := "got no answer", "drops TCP SYNs that carry the MP_JOIN option"
		if v.Last == JoinMissing {
			how = "were refused or reset at once"
			what = "strips MPTCP options from TCP SYNs, or the peer refuses joins (`ip mptcp limits` there)"
		}
		return fmt.Sprintf("%s: MPTCP subflows to the peer do not establish over %s: the joins of %s in a row %s (since %s), while plain TCP reaches the peer over it.\n"+
			"  Something on %s's path (the ISP, its modem, a firewall) %s. Connections are not aggregated over %s; it still carries what is routed to it, and takes over if the others fail.\n"+
			"  Try: put the ISP's modem in bridge mode or turn its firewall off; ask the ISP whether it filters TCP options; `nstat -az | grep MPJoin` on the box counts joins sent (MPJoinSynTx) and answered (MPJoinSynAckRx); until it is fixed, `mptcp: {mode: off}` on %s stops the joins.",
			u, u, n, how, since, u, what, u, u)
	case FallsBack:
		return fmt.Sprintf("%s: Multipath TCP fell back to plain TCP on %s in a row whose first subflow went over %s (since %s): the peer answered without MP_CAPABLE.\n"+
			"  Either the peer does not speak MPTCP (shadowsocks-libev needs --mptcp; net.mptcp.enabled=1 on the peer), or something on %s's path (the ISP, its modem, a firewall) strips MPTCP options. Nothing is aggregated.\n"+
			"  Try: `ss -Mn` on the peer; put the ISP's modem in bridge mode or turn its firewall off; ask the ISP whether it filters TCP options; give a clean uplink the lowest priority (the first subflow leaves by it); `nstat -az | grep MPCapable` on the box counts the fallbacks (MPCapableFallbackSYNACK); when MPCapableSYNTXDisabled rises, MPTCP SYNs were lost and the kernel stopped asking for MPTCP for net.mptcp.blackhole_timeout (3600 s by default, growing).",
			u, n, u, since, u)
	}
	return ""
}

// count is "1 connection", "3 connections".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// Summaries joins the summaries of vs: "isp1 ok (4 subflows), isp2 joins
// fail".
func Summaries(vs []Verdict) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, v.Summary())
	}
	return strings.Join(parts, ", ")
}
