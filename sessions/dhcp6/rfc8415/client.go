package rfc8415

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// Phase is where the client is: which exchange it is in, if any.
type Phase int

// The phases.
const (
	// Init waits before the first Solicit (a random delay up to
	// SOL_MAX_DELAY).
	Init Phase = iota
	// Soliciting has sent a Solicit and collects Advertises.
	Soliciting
	// Requesting has sent a Request to the chosen server and waits for
	// its Reply.
	Requesting
	// Bound holds a delegation until T1.
	Bound
	// Renewing asks the delegation's server to extend it, until T2.
	Renewing
	// Rebinding asks any server to extend it, until it ends.
	Rebinding
	// Releasing gives the delegation back to its server.
	Releasing
	// Stopped has left for good (released, or removed).
	Stopped
)

var phaseNames = [...]string{"INIT", "SOLICITING", "REQUESTING", "BOUND", "RENEWING", "REBINDING", "RELEASING", "STOPPED"}

// String names the phase.
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int(p))
	}
	return phaseNames[p]
}

// Identity is what the client says about itself in every message.
type Identity struct {
	// DUID is the client's DUID (the Client Identifier option).
	DUID dhcpv6.DUID
	// IAID identifies the client's one IA_PD; the same across restarts,
	// so that a server hands the same prefix back.
	IAID [4]byte
}

// Timing holds the client's timers (RFC 8415 section 7.6). A zero field
// takes the RFC's value.
type Timing struct {
	SolMaxDelay, SolTimeout, SolMaxRT time.Duration
	ReqTimeout, ReqMaxRT              time.Duration
	ReqMaxRC                          int
	RenTimeout, RenMaxRT              time.Duration
	RebTimeout, RebMaxRT              time.Duration
	RelTimeout                        time.Duration
	RelMaxRC                          int
	// Jitter bounds RAND, the randomization of every wait: uniform in
	// [-Jitter, +Jitter] (0.1). A negative Jitter means none, and a
	// negative SolMaxDelay no initial delay (tests).
	Jitter float64
}

// RFC 8415's parameters (section 7.6).
const (
	SolMaxDelay = time.Second
	SolTimeout  = time.Second
	SolMaxRT    = 3600 * time.Second
	ReqTimeout  = time.Second
	ReqMaxRT    = 30 * time.Second
	ReqMaxRC    = 10
	RenTimeout  = 10 * time.Second
	RenMaxRT    = 600 * time.Second
	RebTimeout  = 10 * time.Second
	RebMaxRT    = 600 * time.Second
	RelTimeout  = time.Second
	RelMaxRC    = 4
	// DefaultJitter is the bound of RAND (section 15).
	DefaultJitter = 0.1
)

// withDefaults fills in the RFC's parameters.
func (t Timing) withDefaults() Timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.SolMaxDelay, SolMaxDelay)
	def(&t.SolTimeout, SolTimeout)
	def(&t.SolMaxRT, SolMaxRT)
	def(&t.ReqTimeout, ReqTimeout)
	def(&t.ReqMaxRT, ReqMaxRT)
	def(&t.RenTimeout, RenTimeout)
	def(&t.RenMaxRT, RenMaxRT)
	def(&t.RebTimeout, RebTimeout)
	def(&t.RebMaxRT, RebMaxRT)
	def(&t.RelTimeout, RelTimeout)
	if t.ReqMaxRC <= 0 {
		t.ReqMaxRC = ReqMaxRC
	}
	if t.RelMaxRC <= 0 {
		t.RelMaxRC = RelMaxRC
	}
	if t.Jitter == 0 {
		t.Jitter = DefaultJitter
	}
	t.Jitter = min(t.Jitter, 0.5)
	return t
}

// Prefix is one delegated prefix and the ends of its lifetimes; a zero
// time is an infinite lifetime.
type Prefix struct {
	Prefix           netip.Prefix
	Preferred, Valid time.Time
}

// Lease is what a server delegated: the prefixes of the IA_PD, its
// server, the resolvers, and when to renew and rebind.
type Lease struct {
	Prefixes []Prefix
	// Server is the server's DUID, as its Server Identifier option
	// carries it.
	Server []byte
	// DNS are the resolvers of the DNS Recursive Name Server option.
	DNS []netip.Addr
	// Obtained is when the exchange that got or last extended the
	// delegation began: the prefixes' lifetimes count from it.
	Obtained time.Time
	// Renew is T1, Rebind T2, counted from the Reply; zero: never.
	Renew, Rebind time.Time
}

// Holds reports whether the lease has a prefix.
func (l Lease) Holds() bool { return len(l.Prefixes) > 0 }

// End is when the last prefix's valid lifetime ends; zero when one never
// does (or there is none).
func (l Lease) End() time.Time {
	var end time.Time
	for _, p := range l.Prefixes {
		if p.Valid.IsZero() {
			return time.Time{}
		}
		if p.Valid.After(end) {
			end = p.Valid
		}
	}
	return end
}

// clone copies the lease's slices.
func (l Lease) clone() Lease {
	l.Prefixes = slices.Clone(l.Prefixes)
	l.Server = slices.Clone(l.Server)
	l.DNS = slices.Clone(l.DNS)
	return l
}

// valid returns the lease without the prefixes that ended at now.
func (l Lease) valid(now time.Time) Lease {
	l = l.clone()
	l.Prefixes = slices.DeleteFunc(l.Prefixes, func(p Prefix) bool { return !p.Valid.IsZero() && !now.Before(p.Valid) })
	return l
}

// Client is the state of one DHCPv6 client: a value, changed only by
// Step. The zero Client is not usable: see New.
type Client struct {
	id     Identity
	timing Timing
	// solMaxRT is SOL_MAX_RT, which a server's option may change.
	solMaxRT time.Duration

	phase Phase
	lease Lease // held, whatever the exchange
	offer Lease // the chosen Advertise's (Requesting)
	best  *offered
	// hint is the last prefix held, asked for again in Solicits.
	hint netip.Prefix

	xid   dhcpv6.TransactionID
	began time.Time     // first transmission of this exchange
	sent  int           // transmissions in this exchange
	rt    time.Duration // the current retransmission wait
	due   time.Time     // when Step wants a Timeout for the exchange; zero: none

	searching time.Time // when the client began looking for a delegation
	why       string    // why the client holds nothing, for status

	rng rand.PCG
}

// offered is an Advertise the client may request from.
type offered struct {
	lease Lease
	pref  uint8
}

// New returns a client for id with timing (zero fields: the RFC's), whose
// transaction IDs and randomization come from seed. It does nothing until
// it gets Start.
func New(id Identity, timing Timing, seed uint64) Client {
	c := Client{id: id, timing: timing.withDefaults(), phase: Init}
	c.solMaxRT = c.timing.SolMaxRT
	c.rng.Seed(seed, seed^0x9e3779b97f4a7c15)
	return c
}

// Phase is where the client is.
func (c Client) Phase() Phase { return c.phase }

// Lease is the delegation the client holds, and whether it holds one.
func (c Client) Lease() (Lease, bool) {
	if !c.lease.Holds() {
		return Lease{}, false
	}
	return c.lease.clone(), true
}

// Deadline is when the client wants a Timeout; zero means never.
func (c Client) Deadline() time.Time {
	d := c.due
	for _, p := range c.lease.Prefixes {
		if !p.Valid.IsZero() && (d.IsZero() || p.Valid.Before(d)) {
			d = p.Valid
		}
	}
	return d
}

// XID is the transaction ID of the current exchange.
func (c Client) XID() dhcpv6.TransactionID { return c.xid }

// Event is what happens to a client: Start, Timeout, Receive or Release.
type Event interface{ event() }

// Start starts the client: with the delegation it held before a restart,
// by rebinding it (section 18.2.12) while it stays in use; else by
// soliciting one.
type Start struct{ Lease *Lease }

// Timeout is the client's Deadline passing.
type Timeout struct{}

// Receive is a message that came from a server.
type Receive struct{ Msg *dhcpv6.Message }

// Release ends the client for good (its section left the spec): a held
// delegation is given back to its server.
type Release struct{}

func (Start) event()   {}
func (Timeout) event() {}
func (Receive) event() {}
func (Release) event() {}

// Action is what the session must do: Send, Bind or Unbind.
type Action interface{ action() }

// Send sends Msg to All_DHCP_Relay_Agents_and_Servers (ff02::1:2) from
// the link's link-local address: RFC 8415's client sends every message
// there (it uses no Server Unicast option).
type Send struct{ Msg *dhcpv6.Message }

// Bind says the client holds Lease, new, extended or with fewer
// prefixes: publish it.
type Bind struct{ Lease Lease }

// Unbind says the client lost its delegation, and Why: withdraw it.
type Unbind struct{ Why string }

func (Send) action()   {}
func (Bind) action()   {}
func (Unbind) action() {}

// Step is the client's transition function: what the client becomes
// after ev at now, and what the session must do. It never changes c.
func (c Client) Step(ev Event, now time.Time) (Client, []Action) {
	if c.phase == Stopped {
		return c, nil
	}
	c.lease = c.lease.clone()
	var acts []Action
	switch ev := ev.(type) {
	case Start:
		if ev.Lease != nil {
			if l := ev.Lease.valid(now); l.Holds() && len(l.Server) > 0 {
				c.lease = l
				c.hint = l.Prefixes[0].Prefix
				acts = append(acts, Bind{Lease: c.lease.clone()})
				c.phase = Rebinding
				c.newExchange(now, c.timing.RebTimeout)
				return c, c.transmit(now, acts)
			}
		}
		c.phase = Init
		c.searching = now
		c.due = now
		if d := c.timing.SolMaxDelay; d > 0 {
			c.due = now.Add(time.Duration(c.rng.Uint64() % uint64(d+1)))
		}
	case Timeout:
		acts = c.expire(now, acts)
		if c.due.IsZero() || now.Before(c.due) {
			return c, acts
		}
		acts = c.timeout(now, acts)
	case Receive:
		acts = c.receive(ev.Msg, now, acts)
	case Release:
		if c.lease.Holds() && c.phase != Releasing {
			c.phase = Releasing
			c.newExchange(now, c.timing.RelTimeout)
			acts = c.transmit(now, acts)
			return c, append(acts, Unbind{Why: "released"})
		}
		if c.phase != Releasing {
			c.phase, c.due = Stopped, time.Time{}
		}
	}
	return c, acts
}

// expire drops the prefixes whose valid lifetime ended; when none is
// left, the delegation is lost and the client solicits a new one.
func (c *Client) expire(now time.Time, acts []Action) []Action {
	if !c.lease.Holds() {
		return acts
	}
	l := c.lease.valid(now)
	if len(l.Prefixes) == len(c.lease.Prefixes) {
		return acts
	}
	if l.Holds() {
		c.lease = l
		return append(acts, Bind{Lease: l.clone()})
	}
	why := fmt.Sprintf("the delegation of %s from server %s expired", c.lease.Prefixes[0].Prefix, DUIDString(c.lease.Server))
	c.lease = Lease{}
	c.why = why
	acts = append(acts, Unbind{Why: why})
	switch c.phase {
	case Bound, Renewing, Rebinding:
		return c.solicit(now, acts)
	}
	return acts
}

// timeout handles the deadline of the exchange.
func (c *Client) timeout(now time.Time, acts []Action) []Action {
	switch c.phase {
	case Init:
		return c.solicit(now, acts)
	case Soliciting:
		if c.sent == 1 && c.best != nil {
			// The first wait is over: the best Advertise collected.
			return c.request(*c.best, now, acts)
		}
		return c.transmit(now, acts)
	case Requesting:
		if c.sent >= c.timing.ReqMaxRC {
			c.why = fmt.Sprintf("no Reply from server %s to %d Requests", DUIDString(c.offer.Server), c.sent)
			return c.solicit(now, acts)
		}
		return c.transmit(now, acts)
	case Bound:
		return c.holdTimers(now, acts)
	case Renewing:
		if !c.lease.Rebind.IsZero() && !now.Before(c.lease.Rebind) {
			c.phase = Rebinding
			c.newExchange(now, c.timing.RebTimeout)
		}
		return c.transmit(now, acts)
	case Rebinding:
		// Until the delegation ends (expire), or a server answers.
		return c.transmit(now, acts)
	case Releasing:
		if c.sent >= c.timing.RelMaxRC {
			c.phase, c.due = Stopped, time.Time{}
			return acts
		}
		return c.transmit(now, acts)
	}
	return acts
}

// holdTimers moves a bound delegation along its times: renew at T1,
// rebind at T2 (when T1 was skipped), else wait for T1.
func (c *Client) holdTimers(now time.Time, acts []Action) []Action {
	l := c.lease
	switch {
	case !l.Rebind.IsZero() && !now.Before(l.Rebind):
		c.phase = Rebinding
		c.newExchange(now, c.timing.RebTimeout)
		return c.transmit(now, acts)
	case !l.Renew.IsZero() && !now.Before(l.Renew):
		c.phase = Renewing
		c.newExchange(now, c.timing.RenTimeout)
		return c.transmit(now, acts)
	}
	c.phase = Bound
	c.due = l.Renew
	return acts
}

// newExchange starts an exchange under a new transaction ID, whose first
// wait is irt.
func (c *Client) newExchange(now time.Time, irt time.Duration) {
	v := c.rng.Uint64()
	c.xid = dhcpv6.TransactionID{byte(v), byte(v >> 8), byte(v >> 16)}
	c.began, c.sent, c.rt = now, 0, irt
}

// solicit starts looking for a delegation.
func (c *Client) solicit(now time.Time, acts []Action) []Action {
	c.phase = Soliciting
	c.best = nil
	c.offer = Lease{}
	c.searching = now
	c.newExchange(now, c.timing.SolTimeout)
	return c.transmit(now, acts)
}

// request asks the server of o for what it advertised.
func (c *Client) request(o offered, now time.Time, acts []Action) []Action {
	c.phase = Requesting
	c.offer = o.lease
	c.best = nil
	c.newExchange(now, c.timing.ReqTimeout)
	return c.transmit(now, acts)
}

// transmit sends (or sends again) the current exchange's message and
// sets the deadline of its answer (section 15).
func (c *Client) transmit(now time.Time, acts []Action) []Action {
	var typ dhcpv6.MessageType
	var mrt, mrd time.Duration
	switch c.phase {
	case Soliciting:
		typ, mrt = dhcpv6.MessageTypeSolicit, c.solMaxRT
	case Requesting:
		typ, mrt = dhcpv6.MessageTypeRequest, c.timing.ReqMaxRT
	case Renewing:
		typ, mrt = dhcpv6.MessageTypeRenew, c.timing.RenMaxRT
		if !c.lease.Rebind.IsZero() {
			mrd = c.lease.Rebind.Sub(c.began)
		}
	case Rebinding:
		typ, mrt = dhcpv6.MessageTypeRebind, c.timing.RebMaxRT
		if end := c.lease.End(); !end.IsZero() {
			mrd = end.Sub(c.began)
		}
	case Releasing:
		typ = dhcpv6.MessageTypeRelease
	default:
		return acts
	}
	if c.sent == 0 {
		c.rt += c.randomize(c.rt, c.phase == Soliciting)
	} else {
		c.rt = 2*c.rt + c.randomize(c.rt, false)
		if mrt > 0 && c.rt > mrt {
			c.rt = mrt + c.randomize(mrt, false)
		}
	}
	c.rt = max(c.rt, time.Millisecond)
	c.sent++
	acts = append(acts, Send{Msg: c.message(typ, now)})
	c.due = now.Add(c.rt)
	if mrd > 0 {
		if limit := c.began.Add(mrd); limit.Before(c.due) {
			c.due = limit
		}
	}
	return acts
}

// randomize returns RAND × d, RAND uniform in [-Jitter, +Jitter]; for the
// first Solicit, strictly above zero (section 18.2.1).
func (c *Client) randomize(d time.Duration, positive bool) time.Duration {
	j := c.timing.Jitter
	if j <= 0 {
		return 0
	}
	f := float64(c.rng.Uint64()>>11) / (1 << 53) // [0, 1)
	r := (f*2 - 1) * j
	if positive {
		r = j * (1 - f) // (0, j]
	}
	return time.Duration(r * float64(d))
}

// receive handles a message from a server: only what answers the
// current exchange, from a server that names itself and names this
// client (section 16).
func (c *Client) receive(m *dhcpv6.Message, now time.Time, acts []Action) []Action {
	if m == nil || m.TransactionID != c.xid {
		return acts
	}
	sid := m.Options.ServerID()
	cid := m.Options.ClientID()
	if sid == nil || cid == nil || !bytes.Equal(cid.ToBytes(), c.id.DUID.ToBytes()) {
		return acts
	}
	server := sid.ToBytes()
	switch typ := m.Type(); {
	case typ == dhcpv6.MessageTypeAdvertise && c.phase == Soliciting:
		c.solMaxRTOf(m)
		l, why := c.leaseOf(m, server, c.began, now, Lease{})
		if !l.Holds() {
			c.why = fmt.Sprintf("Advertise from server %s ignored: %s", DUIDString(server), why)
			return acts
		}
		o := offered{lease: l, pref: m.Options.Preference()}
		if o.pref == 255 || c.sent > 1 {
			return c.request(o, now, acts)
		}
		if c.best == nil || o.pref > c.best.pref {
			c.best = &o
		}
		return acts
	case typ == dhcpv6.MessageTypeReply && c.phase == Releasing:
		c.phase, c.due = Stopped, time.Time{}
		return acts
	case typ == dhcpv6.MessageTypeReply && (c.phase == Requesting || c.phase == Renewing || c.phase == Rebinding):
		c.solMaxRTOf(m)
		if st := m.Options.Status(); st != nil && st.StatusCode != 0 {
			c.why = fmt.Sprintf("Reply from server %s: %s", DUIDString(server), statusString(st))
			return acts
		}
		pd := c.iapd(m)
		if pd == nil {
			c.why = fmt.Sprintf("Reply from server %s without our IA_PD", DUIDString(server))
			return acts
		}
		if st := pd.Options.Status(); st != nil && st.StatusCode != 0 {
			c.why = fmt.Sprintf("Reply from server %s: %s", DUIDString(server), statusString(st))
			if st.StatusCode == noBinding && c.phase != Requesting {
				// The server lost the binding: ask for it again, from
				// the server that answered (section 18.2.10.1).
				o := c.lease.clone()
				o.Server = server
				return c.request(offered{lease: o}, now, acts)
			}
			return acts
		}
		prev := Lease{}
		if c.phase != Requesting {
			prev = c.lease
		}
		l, why := c.leaseOf(m, server, c.began, now, prev)
		if !l.Holds() {
			c.why = fmt.Sprintf("Reply from server %s ignored: %s", DUIDString(server), why)
			return acts
		}
		return c.bind(l, now, acts)
	}
	return acts
}

// noBinding is RFC 8415's status code NoBinding.
const noBinding = 3

// bind takes lease l up and waits for T1.
func (c *Client) bind(l Lease, now time.Time, acts []Action) []Action {
	c.lease = l
	c.offer = Lease{}
	c.best = nil
	c.why = ""
	c.hint = l.Prefixes[0].Prefix
	acts = append(acts, Bind{Lease: l.clone()})
	c.phase = Bound
	return c.holdTimers(now, acts)
}

// solMaxRTOf takes a server's SOL_MAX_RT option (section 21.24): a value
// from 60 to 86400 s replaces SOL_MAX_RT; others are ignored.
func (c *Client) solMaxRTOf(m *dhcpv6.Message) {
	if d, ok := SolMaxRTOption(m); ok {
		c.solMaxRT = d
	}
}
