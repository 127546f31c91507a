package rfc2131

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Phase is where the client is in RFC 2131's state diagram (Figure 5).
type Phase int

// The phases. INIT and INIT-REBOOT last no time here: starting in INIT
// sends a DISCOVER (SELECTING), starting with a lease sends its REQUEST
// (REBOOTING).
const (
	// Init waits before it starts over: after a DECLINE (10 s), or after
	// NAKs in a row.
	Init Phase = iota
	// Selecting has sent a DISCOVER and waits for an OFFER.
	Selecting
	// Requesting has sent a REQUEST for an offer and waits for its ACK.
	Requesting
	// Checking holds an ACK and checks that nobody else uses its address
	// (an ARP probe, done by the session) before it binds.
	Checking
	// Rebooting has sent a REQUEST for the lease it had before a restart
	// (INIT-REBOOT) and waits for the server to confirm it.
	Rebooting
	// Bound holds a lease until T1.
	Bound
	// Renewing asks the lease's server to extend it, until T2.
	Renewing
	// Rebinding asks any server to extend it, until the lease expires.
	Rebinding
	// Stopped has left for good (released, or removed).
	Stopped
)

var phaseNames = [...]string{"INIT", "SELECTING", "REQUESTING", "CHECKING", "REBOOTING", "BOUND", "RENEWING", "REBINDING", "STOPPED"}

// String names the phase as RFC 2131 does.
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int(p))
	}
	return phaseNames[p]
}

// Holds reports whether a client in phase p holds a lease it may use.
func (p Phase) Holds() bool { return p == Bound || p == Renewing || p == Rebinding }

// Identity is what the client says about itself in every message.
type Identity struct {
	// HWAddr is the interface's Ethernet address (chaddr).
	HWAddr net.HardwareAddr
	// ClientID is option 61, whole: a type octet, then the identifier.
	ClientID []byte
	// VendorClass is option 60; empty sends none.
	VendorClass string
	// Hostname is option 12; empty sends none.
	Hostname string
}

// Timing holds the client's timers. A zero field takes RFC 2131's value.
type Timing struct {
	// Retransmit is the first wait for an answer (4 s); each
	// retransmission doubles it up to RetransmitMax (64 s).
	Retransmit, RetransmitMax time.Duration
	// Jitter is added to every retransmission wait, uniformly in
	// [-Jitter, +Jitter] (1 s). A negative Jitter means none (tests).
	Jitter time.Duration
	// RequestTries is how many REQUESTs (while requesting, or rebooting)
	// go unanswered before the client starts over (4: about a minute
	// with the default waits).
	RequestTries int
	// RenewRetryMin is the shortest wait between REQUESTs while renewing
	// or rebinding (60 s).
	RenewRetryMin time.Duration
	// CheckWait is how long the offered address is checked for another
	// user before the client takes it (1 s). A negative CheckWait skips
	// the check.
	CheckWait time.Duration
	// DeclineWait is the wait after a DECLINE before the client starts
	// over (10 s, RFC 2131 3.1).
	DeclineWait time.Duration
}

// RFC 2131's timers.
const (
	DefaultRetransmit    = 4 * time.Second
	DefaultRetransmitMax = 64 * time.Second
	DefaultJitter        = time.Second
	DefaultRequestTries  = 4
	DefaultRenewRetryMin = 60 * time.Second
	DefaultCheckWait     = time.Second
	DefaultDeclineWait   = 10 * time.Second
)

// withDefaults fills in RFC 2131's timers.
func (t Timing) withDefaults() Timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.Retransmit, DefaultRetransmit)
	def(&t.RetransmitMax, DefaultRetransmitMax)
	def(&t.Jitter, DefaultJitter)
	def(&t.RenewRetryMin, DefaultRenewRetryMin)
	def(&t.CheckWait, DefaultCheckWait)
	def(&t.DeclineWait, DefaultDeclineWait)
	if t.RequestTries <= 0 {
		t.RequestTries = DefaultRequestTries
	}
	t.RetransmitMax = max(t.RetransmitMax, t.Retransmit)
	return t
}

// Lease is an address leased by a server, with its parameters and times.
type Lease struct {
	// Address is yiaddr with the subnet mask's length (option 1).
	Address netip.Prefix
	// Gateway is the first router (option 3); invalid when none.
	Gateway netip.Addr
	// DNS are the resolvers (option 6).
	DNS []netip.Addr
	// Server is the server identifier (option 54).
	Server netip.Addr
	// Obtained is when the REQUEST that got the lease was first sent:
	// the lease's times count from it (RFC 2131 4.4.1).
	Obtained time.Time
	// Renew is T1, Rebind T2 and Expiry the lease's end; all zero for an
	// infinite lease.
	Renew, Rebind, Expiry time.Time
}

// Infinite reports whether the lease never ends (lease time 0xffffffff).
func (l Lease) Infinite() bool { return l.Expiry.IsZero() }

// valid reports whether l can be taken up after a restart at now.
func (l Lease) valid(now time.Time) bool {
	return l.Address.IsValid() && l.Address.Addr().Is4() && l.Server.IsValid() &&
		(l.Infinite() || now.Before(l.Expiry))
}

// Client is the state of one DHCPv4 client: a value, changed only by
// Step. The zero Client is not usable: see New.
type Client struct {
	id     Identity
	timing Timing

	phase Phase
	lease Lease // held (Bound, Renewing, Rebinding) or to confirm (Rebooting)
	offer Lease // asked for (Requesting) or acknowledged (Checking)

	xid   dhcpv4.TransactionID
	secs  uint16    // of the DISCOVER the offer answered (RFC 2131 4.4.1)
	began time.Time // first transmission of this exchange
	sent  int       // transmissions in this exchange
	due   time.Time // when Step wants a Timeout; zero: none

	searching time.Time // when the client began looking for a lease
	naks      int       // NAKs in a row, without a lease between
	why       string    // why the client holds no lease, for status

	rng rand.PCG
}

// New returns a client in INIT for id with timing (zero fields: the
// RFC's), whose transaction IDs and jitter come from seed. It does
// nothing until it gets Start.
func New(id Identity, timing Timing, seed uint64) Client {
	c := Client{id: id, timing: timing.withDefaults(), phase: Init}
	c.rng.Seed(seed, seed^0x9e3779b97f4a7c15)
	return c
}

// Phase is where the client is.
func (c Client) Phase() Phase { return c.phase }

// Lease is the lease the client holds (or confirms while rebooting), and
// whether it holds one.
func (c Client) Lease() (Lease, bool) {
	if c.phase.Holds() || c.phase == Rebooting {
		return c.lease, true
	}
	return Lease{}, false
}

// Deadline is when the client wants a Timeout; zero means never.
func (c Client) Deadline() time.Time { return c.due }

// XID is the transaction ID of the current exchange.
func (c Client) XID() dhcpv4.TransactionID { return c.xid }

// Event is what happens to a client: Start, Timeout, Receive, Conflict
// or Release.
type Event interface{ event() }

// Start starts the client: with the lease it held before a restart (not
// expired), by confirming it (INIT-REBOOT); else by asking for one.
type Start struct{ Lease *Lease }

// Timeout is the client's Deadline passing.
type Timeout struct{}

// Receive is a message that came from a server.
type Receive struct{ Msg *dhcpv4.DHCPv4 }

// Conflict is the address check finding Addr in use by someone else.
type Conflict struct{ Addr netip.Addr }

// Release ends the client for good (its uplink left the spec): a held
// lease is given back to its server.
type Release struct{}

func (Start) event()    {}
func (Timeout) event()  {}
func (Receive) event()  {}
func (Conflict) event() {}
func (Release) event()  {}

// Action is what the session must do: Send, Bind, Unbind or Check.
type Action interface{ action() }

// Send sends Msg to To (the limited broadcast address, or the server)
// from From: the unspecified address (a raw frame, to all stations)
// before the client may use its address, the lease's address after.
type Send struct {
	Msg      *dhcpv4.DHCPv4
	To, From netip.Addr
}

// Bind says the client holds Lease, new or extended: publish it.
type Bind struct{ Lease Lease }

// Unbind says the client lost its lease, and Why: withdraw it.
type Unbind struct{ Why string }

// Check asks the session to look for another user of Addr (an ARP
// probe) until the client's Deadline, and to report one as Conflict.
type Check struct{ Addr netip.Addr }

func (Send) action()   {}
func (Bind) action()   {}
func (Unbind) action() {}
func (Check) action()  {}

// Broadcast is the limited broadcast address, where a client without an
// address sends.
var Broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Step is the client's transition function: what the client becomes
// after ev at now, and what the session must do. It never changes c.
func (c Client) Step(ev Event, now time.Time) (Client, []Action) {
	var acts []Action
	if c.phase == Stopped {
		return c, nil
	}
	switch ev := ev.(type) {
	case Start:
		if ev.Lease != nil && ev.Lease.valid(now) {
			c.lease = *ev.Lease
			acts = c.reboot(now, acts)
		} else {
			acts = c.discover(now, acts)
		}
	case Timeout:
		if c.due.IsZero() || now.Before(c.due) {
			return c, nil
		}
		acts = c.timeout(now, acts)
	case Receive:
		acts = c.receive(ev.Msg, now, acts)
	case Conflict:
		if c.phase == Checking && ev.Addr == c.offer.Address.Addr() {
			acts = c.decline(now, acts)
		}
	case Release:
		if c.phase.Holds() || c.phase == Rebooting {
			acts = append(acts, c.send(dhcpv4.MessageTypeRelease, now, c.lease.Server, c.lease.Address.Addr()))
		}
		c.phase, c.due = Stopped, time.Time{}
	}
	return c, acts
}

// timeout handles the deadline of each phase.
func (c *Client) timeout(now time.Time, acts []Action) []Action {
	switch c.phase {
	case Init:
		return c.discover(now, acts)
	case Selecting:
		return c.transmit(now, acts)
	case Requesting:
		if c.sent >= c.timing.RequestTries {
			c.why = fmt.Sprintf("no answer from %s to %d REQUESTs for %s", c.offer.Server, c.sent, c.offer.Address.Addr())
			return c.discover(now, acts)
		}
		return c.transmit(now, acts)
	case Checking:
		return c.bind(c.offer, acts)
	case Rebooting:
		if c.sent < c.timing.RequestTries {
			return c.transmit(now, acts)
		}
		// RFC 2131 3.2: with no answer, the client may use its lease
		// until it expires.
		if !c.lease.valid(now) {
			return c.expire(now, acts)
		}
		c.why = ""
		c.phase = Bound
		acts = append(acts, Bind{Lease: c.lease})
		return c.holdTimers(now, acts)
	case Bound, Renewing, Rebinding:
		return c.holdTimers(now, acts)
	}
	return acts
}

// holdTimers moves a held lease along its times: renew at T1, rebind at
// T2, end at expiry; and retransmits a renewal whose wait is over.
func (c *Client) holdTimers(now time.Time, acts []Action) []Action {
	l := c.lease
	switch {
	case !l.Infinite() && !now.Before(l.Expiry):
		return c.expire(now, acts)
	case !l.Infinite() && !now.Before(l.Rebind):
		if c.phase != Rebinding {
			c.phase = Rebinding
			c.newExchange(now)
		}
		return c.transmit(now, acts)
	case !l.Infinite() && !now.Before(l.Renew):
		if c.phase != Renewing {
			c.phase = Renewing
			c.newExchange(now)
		}
		return c.transmit(now, acts)
	}
	c.phase = Bound
	c.due = l.Renew
	return acts
}

// expire ends a lease that ran out.
func (c *Client) expire(now time.Time, acts []Action) []Action {
	why := fmt.Sprintf("the lease of %s from %s expired", c.lease.Address, c.lease.Server)
	acts = append(acts, Unbind{Why: why})
	c.lease = Lease{}
	c.why = why
	return c.discover(now, acts)
}

// newExchange starts an exchange of messages under a new transaction ID.
func (c *Client) newExchange(now time.Time) {
	var xid dhcpv4.TransactionID
	v := c.rng.Uint64()
	for i := range xid {
		xid[i] = byte(v >> (8 * i))
	}
	c.xid, c.began, c.sent = xid, now, 0
}

// discover starts looking for a lease: SELECTING, a DISCOVER.
func (c *Client) discover(now time.Time, acts []Action) []Action {
	c.phase = Selecting
	c.offer = Lease{}
	c.searching = now
	c.newExchange(now)
	return c.transmit(now, acts)
}

// reboot confirms the lease held before a restart: INIT-REBOOT, a
// REQUEST, REBOOTING.
func (c *Client) reboot(now time.Time, acts []Action) []Action {
	c.phase = Rebooting
	c.searching = now
	c.newExchange(now)
	return c.transmit(now, acts)
}

// transmit sends (or sends again) the current phase's message and sets
// the deadline of its answer.
func (c *Client) transmit(now time.Time, acts []Action) []Action {
	c.sent++
	switch c.phase {
	case Selecting:
		c.secs = secondsSince(c.searching, now)
		acts = append(acts, c.send(dhcpv4.MessageTypeDiscover, now, Broadcast, netip.IPv4Unspecified()))
		c.due = now.Add(c.backoff())
	case Requesting, Rebooting:
		acts = append(acts, c.send(dhcpv4.MessageTypeRequest, now, Broadcast, netip.IPv4Unspecified()))
		c.due = now.Add(c.backoff())
	case Renewing:
		acts = append(acts, c.send(dhcpv4.MessageTypeRequest, now, c.lease.Server, c.lease.Address.Addr()))
		c.due = c.renewRetry(now, c.lease.Rebind)
	case Rebinding:
		acts = append(acts, c.send(dhcpv4.MessageTypeRequest, now, Broadcast, c.lease.Address.Addr()))
		c.due = c.renewRetry(now, c.lease.Expiry)
	}
	return acts
}

// backoff is the wait after the c.sent-th transmission: Retransmit,
// doubling up to RetransmitMax, ± Jitter.
func (c *Client) backoff() time.Duration {
	d := c.timing.Retransmit
	for i := 1; i < c.sent && d < c.timing.RetransmitMax; i++ {
		d *= 2
	}
	d = min(d, c.timing.RetransmitMax)
	if j := c.timing.Jitter; j > 0 {
		d += time.Duration(c.rng.Uint64()%uint64(2*j+1)) - j
	}
	return max(d, 0)
}

// renewRetry is when a renewing (rebinding) client sends again: after
// half the time left until limit (T2, or the expiry), at least
// RenewRetryMin, and never past limit.
func (c *Client) renewRetry(now, limit time.Time) time.Time {
	wait := max(limit.Sub(now)/2, c.timing.RenewRetryMin)
	return minTime(now.Add(wait), limit)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func secondsSince(t, now time.Time) uint16 {
	s := now.Sub(t) / time.Second
	return uint16(min(max(s, 0), 0xffff))
}

// receive handles a message from a server.
func (c *Client) receive(m *dhcpv4.DHCPv4, now time.Time, acts []Action) []Action {
	if m == nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != c.xid ||
		string(m.ClientHWAddr) != string(c.id.HWAddr) {
		return acts
	}
	switch typ := m.MessageType(); {
	case typ == dhcpv4.MessageTypeOffer && c.phase == Selecting:
		offer, ok := leaseOf(m, now, Lease{})
		if !ok {
			return acts
		}
		c.offer = offer
		c.phase = Requesting
		// The lease's times count from this REQUEST, not from the first
		// DISCOVER; its secs stay the DISCOVER's (c.secs).
		c.began, c.sent = now, 0
		return c.transmit(now, acts)
	case typ == dhcpv4.MessageTypeAck && c.phase == Requesting:
		if sid := serverOf(m); sid.IsValid() && sid != c.offer.Server {
			return acts
		}
		l, ok := leaseOf(m, c.began, c.offer)
		if !ok || l.Address.Addr() != c.offer.Address.Addr() {
			return acts
		}
		if c.timing.CheckWait < 0 {
			return c.bind(l, acts)
		}
		c.offer = l
		c.phase = Checking
		c.due = now.Add(c.timing.CheckWait)
		return append(acts, Check{Addr: l.Address.Addr()})
	case typ == dhcpv4.MessageTypeAck && (c.phase == Rebooting || c.phase == Renewing || c.phase == Rebinding):
		l, ok := leaseOf(m, c.began, c.lease)
		if !ok {
			return acts
		}
		return c.bind(l, acts)
	case typ == dhcpv4.MessageTypeNak && c.phase == Requesting:
		if sid := serverOf(m); sid.IsValid() && sid != c.offer.Server {
			return acts
		}
		return c.nak(m, now, acts)
	case typ == dhcpv4.MessageTypeNak && (c.phase == Rebooting || c.phase == Renewing || c.phase == Rebinding):
		if sid := serverOf(m); c.phase == Renewing && sid.IsValid() && sid != c.lease.Server {
			return acts
		}
		acts = append(acts, Unbind{Why: c.nakWhy(m)})
		c.lease = Lease{}
		return c.nak(m, now, acts)
	}
	return acts
}

// nak starts over after a NAK: at once the first time, after the
// retransmission waits when NAKs follow one another (a server that
// offers what it then refuses must not make the client spin).
func (c *Client) nak(m *dhcpv4.DHCPv4, now time.Time, acts []Action) []Action {
	c.naks++
	c.why = c.nakWhy(m)
	if c.naks == 1 {
		return c.discover(now, acts)
	}
	c.phase = Init
	c.sent = c.naks - 1
	c.due = now.Add(c.backoff())
	return acts
}

func (c *Client) nakWhy(m *dhcpv4.DHCPv4) string {
	why := "NAK from " + serverOf(m).String()
	if msg := m.Message(); msg != "" {
		why += fmt.Sprintf(" (%q)", msg)
	}
	return why
}

// decline refuses an acknowledged address someone else uses, and starts
// over after DeclineWait.
func (c *Client) decline(now time.Time, acts []Action) []Action {
	addr := c.offer.Address.Addr()
	acts = append(acts, c.send(dhcpv4.MessageTypeDecline, now, Broadcast, netip.IPv4Unspecified()))
	c.why = fmt.Sprintf("%s from %s is in use by another host: declined", addr, c.offer.Server)
	c.offer = Lease{}
	c.phase = Init
	c.due = now.Add(c.timing.DeclineWait)
	return acts
}

// bind takes lease l up.
func (c *Client) bind(l Lease, acts []Action) []Action {
	c.lease = l
	c.offer = Lease{}
	c.phase = Bound
	c.naks = 0
	c.why = ""
	c.due = l.Renew
	return append(acts, Bind{Lease: l})
}

// serverOf returns a message's server identifier (option 54), or an
// invalid address.
func serverOf(m *dhcpv4.DHCPv4) netip.Addr {
	a, _ := addr4(m.ServerIdentifier())
	return a
}

// addr4 converts an IPv4 address from the library's form.
func addr4(ip net.IP) (netip.Addr, bool) {
	ip4 := ip.To4()
	if ip4 == nil {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(ip4)), true
}

// usable reports whether a can be an interface's own address.
func usable(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && a != Broadcast
}

// infinite is the lease time that never ends (RFC 2131 3.3).
const infinite = time.Duration(0xffffffff) * time.Second

// leaseOf reads a lease from an OFFER or an ACK whose request was first
// sent at obtained. prev supplies what an ACK may leave out (the server
// identifier of the lease it extends). It reports false for a message
// that offers no usable address, no server or no lease time (or one of
// zero).
func leaseOf(m *dhcpv4.DHCPv4, obtained time.Time, prev Lease) (Lease, bool) {
	yi, ok := addr4(m.YourIPAddr)
	if !ok || !usable(yi) {
		return Lease{}, false
	}
	l := Lease{Server: serverOf(m), Obtained: obtained}
	if !l.Server.IsValid() {
		l.Server = prev.Server
	}
	if !l.Server.IsValid() || !usable(l.Server) {
		return Lease{}, false
	}
	bits := classful(yi)
	if mask := m.SubnetMask(); mask != nil {
		ones, size := mask.Size()
		if size != 32 {
			return Lease{}, false
		}
		bits = ones
	}
	l.Address = netip.PrefixFrom(yi, bits)
	for _, r := range m.Router() {
		if a, ok := addr4(r); ok && usable(a) {
			l.Gateway = a
			break
		}
	}
	for _, d := range m.DNS() {
		if a, ok := addr4(d); ok && usable(a) {
			l.DNS = append(l.DNS, a)
		}
	}
	if m.Options.Get(dhcpv4.OptionIPAddressLeaseTime) == nil {
		return Lease{}, false
	}
	lt := m.IPAddressLeaseTime(0)
	if lt <= 0 {
		return Lease{}, false
	}
	if lt >= infinite {
		return l, true
	}
	t1, t2 := timers(lt, m.IPAddressRenewalTime(0), m.IPAddressRebindingTime(0))
	l.Renew, l.Rebind, l.Expiry = obtained.Add(t1), obtained.Add(t2), obtained.Add(lt)
	return l, true
}

// timers returns T1 and T2 for a lease of lt: the server's (options 58
// and 59) when they are in order (0 < T1 < T2 < lt), else RFC 2131 4.4.5's
// 0.5 and 0.875 of the lease.
// Divisions come before multiplications: a lease of 2^32-1 seconds, in
// nanoseconds, times 7 overflows a time.Duration.
func timers(lt, t1, t2 time.Duration) (time.Duration, time.Duration) {
	if t2 <= 0 || t2 >= lt {
		t2 = lt / 8 * 7
	}
	if t1 <= 0 || t1 >= t2 {
		t1 = min(lt/2, t2/7*4)
	}
	return t1, t2
}

// classful is the prefix length of a's class, for a server that sends no
// subnet mask (RFC 1122 3.3.1.1's last resort).
func classful(a netip.Addr) int {
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	}
	return 24
}
