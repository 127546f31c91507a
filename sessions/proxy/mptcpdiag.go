package proxy

import (
	"net"
	"slices"
	"strings"
	"time"

	"github.com/braid-router/braid/sessions/proxy/subflows"
)

// Timing and bounds of the look at each connection's subflows.
const (
	// DefaultSubflowSettle is how long after the peer first answered a
	// connection its subflows are looked at: the kernel opens its joins
	// as soon as the connection is established, and a join over a
	// healthy path is answered within a round trip; one whose SYN got no
	// answer has been sent again by then (the first SYN's timeout is
	// 1 s). A join still sending its first SYN is looked at again once.
	DefaultSubflowSettle = 2500 * time.Millisecond
	// maxLooks bounds the connections waiting for their look: past it,
	// a new connection is not looked at (the verdict needs a few, not
	// all of them).
	maxLooks = 32
)

// subflowUplinks are the uplinks as package subflows judges them: each
// probe uplink with its MPTCP endpoints, reached while the peer's probes
// over it succeed. h.mu is held.
func (h *peerHealth) subflowUplinksLocked() []subflows.Uplink {
	reached := map[string]bool{}
	for _, u := range h.m.Uplinks() {
		reached[u.Name] = u.Reached
	}
	var out []subflows.Uplink
	for _, u := range h.cfg.Uplinks {
		if len(u.Endpoints) > 0 {
			out = append(out, subflows.Uplink{Name: u.Name, Endpoints: u.Endpoints, Reached: reached[u.Name]})
		}
	}
	return out
}

// observe looks at c, a connection to the peer the peer has just
// answered, once it has had the time to open its subflows, and records
// what it says of each uplink. A connection closed by then says nothing.
func (h *peerHealth) observe(c *net.TCPConn) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sf == nil || h.looks >= maxLooks {
		return
	}
	h.looks++
	gen := h.sfGen
	time.AfterFunc(h.settle, func() { h.look(c, gen, nil) })
}

// look reads c's subflows and records what they say; pending, on a
// second look, are the uplinks whose join was still sending its first
// SYN at the first (only they are recorded now).
func (h *peerHealth) look(c *net.TCPConn, gen int, pending []string) {
	conn, ok, err := readMPTCP(c)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sf == nil || gen != h.sfGen {
		return // stopped, or judging another peer now
	}
	done := func() { h.looks-- }
	if err != nil || !ok {
		done()
		return
	}
	now := time.Now()
	var again []string
	for _, o := range subflows.Judge(conn, h.subflowUplinksLocked()) {
		if pending != nil && !slices.Contains(pending, o.Uplink) {
			continue
		}
		if o.Result == subflows.JoinPending && pending == nil {
			again = append(again, o.Uplink)
			continue
		}
		h.sf.Record(o, now)
	}
	if len(again) > 0 {
		time.AfterFunc(h.settle, func() { h.look(c, gen, again) })
	} else {
		done()
	}
	h.applyLocked(now)
}

// subflowsLocked keeps the subflows' verdicts of the uplinks that plain
// TCP reaches the peer over (an uplink down, or cut from the peer, is not
// MPTCP's fault: what was found of it is forgotten), and returns the
// status's part: "; mptcp: isp1 ok (4 subflows), isp2 joins fail" and,
// for each uplink flagged, a line that says what it means and what to
// try. Nothing before a connection said anything. h.mu is held.
func (h *peerHealth) subflowsLocked() string {
	if h.sf == nil {
		return ""
	}
	vs := h.verdictsLocked()
	if !slices.ContainsFunc(vs, func(v subflows.Verdict) bool { return v.Known }) {
		return ""
	}
	var b strings.Builder
	b.WriteString("; mptcp: " + subflows.Summaries(vs))
	flagged := map[string]string{}
	for _, v := range vs {
		if e := v.Explain(); e != "" {
			b.WriteString("\n! " + e)
			flagged[v.Uplink] = e
		}
	}
	for name, e := range flagged {
		if h.flagged[name] == "" {
			h.env.Log().Warn("proxy: MPTCP subflows fail over an uplink", "uplink", name, "why", e)
		}
	}
	for name := range h.flagged {
		if flagged[name] == "" {
			h.env.Log().Info("proxy: MPTCP subflows no longer fail over an uplink", "uplink", name)
		}
	}
	h.flagged = flagged
	return b.String()
}

// verdictsLocked forgets what was found of the uplinks plain TCP does
// not reach the peer over, and returns the verdicts on the others, known
// or not. h.mu is held, and h.sf is set.
func (h *peerHealth) verdictsLocked() []subflows.Verdict {
	var keep []string
	var vs []subflows.Verdict
	for _, u := range h.subflowUplinksLocked() {
		if u.Reached {
			keep = append(keep, u.Name)
			vs = append(vs, h.sf.Verdict(u.Name))
		}
	}
	h.sf.Keep(keep)
	return vs
}

// subflowVerdicts returns the known verdicts, as verdictsLocked.
func (h *peerHealth) subflowVerdicts() []subflows.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sf == nil {
		return nil
	}
	var out []subflows.Verdict
	for _, v := range h.verdictsLocked() {
		if v.Known {
			out = append(out, v)
		}
	}
	return out
}
