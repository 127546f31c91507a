package rfc1661

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// Errors that end a link, for callers to word status with errors.Is.
var (
	// ErrAuthRefused is the LNS refusing braid's login (a CHAP Failure,
	// a PAP Authenticate-Nak): a wrong username or password.
	ErrAuthRefused = errors.New("PPP authentication refused")
	// ErrAuthTimeout is an authentication that did not end in time: no
	// Challenge, or no answer to braid's Response or Authenticate-Request.
	ErrAuthTimeout = errors.New("PPP authentication did not complete")
	// ErrKeepalive is the peer leaving LCP echoes unanswered.
	ErrKeepalive = errors.New("PPP keepalive failed: LCP echoes unanswered")
	// ErrLooped is a link that looks looped back: braid's own magic
	// number keeps coming back.
	ErrLooped = errors.New("PPP link looped back")
	// ErrNoIPv6 is the peer refusing IPV6CP (a Protocol-Reject): there
	// is no IPv6 on this link.
	ErrNoIPv6 = errors.New("the PPP peer rejected IPV6CP")
	// ErrClosed is the link closed by braid (Close).
	ErrClosed = errors.New("PPP link closed")
	// ErrRenegotiated is the peer renegotiating the link to other
	// interface identifiers or another MRU than those braid set up with.
	ErrRenegotiated = errors.New("PPP link renegotiated with other parameters")
)

// Phase is where the link is in RFC 1661's phase diagram (section 3.2).
type Phase int

// The phases.
const (
	Dead         Phase = iota // not started, or finished
	Establish                 // LCP negotiates
	Authenticate              // braid logs in with CHAP or PAP
	Network                   // IPV6CP negotiates, or is up
	Terminate                 // LCP terminates the link
)

var phaseNames = [...]string{"dead", "establish", "authenticate", "network", "terminate"}

// String names the phase.
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int(p))
	}
	return phaseNames[p]
}

// Config is what the client negotiates with.
type Config struct {
	// Username and Password are the login, for CHAP-MD5 or PAP.
	Username string
	Password []byte
	// MRU is the Maximum-Receive-Unit braid asks for; zero asks for
	// none (the peer then assumes 1500).
	MRU int
	// InterfaceID is braid's IPv6 interface identifier; zero picks a
	// random one.
	InterfaceID [8]byte
	// Keepalive is the interval of LCP echoes; zero sends none.
	Keepalive time.Duration
	// KeepaliveFailures is how many echoes in a row may go unanswered
	// before the link is declared dead (4).
	KeepaliveFailures int
	// Timers are the automatons' timers (RFC 1661's defaults).
	Timers Timers
	// AuthTimeout bounds the authentication phase (Restart times
	// MaxConfigure: 30 s by default).
	AuthTimeout time.Duration
}

// LogValue keeps the password out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", "(redacted)"),
		slog.Int("mru", c.MRU), slog.Duration("keepalive", c.Keepalive), slog.Int("keepaliveFailures", c.KeepaliveFailures))
}

// DefaultKeepaliveFailures is pppd's usual lcp-echo-failure.
const DefaultKeepaliveFailures = 4

// MinMRU is the smallest MRU braid accepts of the peer: IPv6's minimum
// link MTU (RFC 8200 section 5).
const MinMRU = 1280

// DefaultMRU is the MRU of a peer that does not say (RFC 1661 section 6.1).
const DefaultMRU = 1500

// Action is what the driver must do: Send, Up, Down, Finished or Log.
type Action interface{ action() }

// Send sends Frame (Address, Control, Protocol, Information) to the peer.
type Send struct{ Frame []byte }

// Up says IPV6CP is Opened: IPv6 may flow, between the interface
// identifiers Local and Peer, in packets of at most MRU octets.
type Up struct {
	Local, Peer [8]byte
	MRU         int
}

// Down says IPV6CP left Opened, for Why: IPv6 must stop.
type Down struct{ Why error }

// Finished says the link is dead, for Err; the Conn does nothing more.
type Finished struct{ Err error }

// Log is something worth a log line.
type Log struct {
	Level slog.Level
	Msg   string
	Args  []any
}

func (Send) action()     {}
func (Up) action()       {}
func (Down) action()     {}
func (Finished) action() {}
func (Log) action()      {}

// Conn is braid's side of one PPP link over L2TP: LCP with echo
// keepalive, CHAP-MD5 or PAP login, IPV6CP; IPCP and other protocols are
// Protocol-Rejected. It has no socket and no clock: the driver calls
// Open, Input, Timeout and Close with the time, and carries out the
// actions they return. Its methods are not safe for concurrent use.
type Conn struct {
	cfg Config
	rng *rand.Rand
	out []Action

	phase    Phase
	lcp      *fsm
	ipv6cp   *fsm
	lcpOpts  *lcpLayer
	v6Opts   *ipv6cpLayer
	auth     auth
	echo     echo
	now      time.Time // of the call being handled
	err      error     // why the link finished
	upOnce   *Up       // the parameters of the first Up
	finished bool
}

// New returns a link, Dead until Open. Its magic numbers, interface
// identifier and Identifiers come from seed.
func New(cfg Config, seed uint64) *Conn {
	if cfg.KeepaliveFailures <= 0 {
		cfg.KeepaliveFailures = DefaultKeepaliveFailures
	}
	cfg.Timers = cfg.Timers.withDefaults()
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = cfg.Timers.Restart * time.Duration(cfg.Timers.MaxConfigure)
	}
	c := &Conn{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	c.lcpOpts = &lcpLayer{c: c, mru: cfg.MRU, peerMRU: DefaultMRU}
	c.lcpOpts.magic = c.newMagic()
	c.lcp = newFSM(frame.ProtoLCP, c.lcpOpts, cfg.Timers, c.sender(frame.ProtoLCP))
	c.lcp.nextID = uint8(c.rng.Uint32())
	c.v6Opts = &ipv6cpLayer{c: c, local: cfg.InterfaceID}
	if c.v6Opts.local == ([8]byte{}) {
		c.v6Opts.local = c.randomID()
	}
	c.ipv6cp = newFSM(frame.ProtoIPV6CP, c.v6Opts, cfg.Timers, c.sender(frame.ProtoIPV6CP))
	c.ipv6cp.nextID = uint8(c.rng.Uint32())
	c.lcp.peerMRU = func() int { return c.lcpOpts.peerMRU }
	c.ipv6cp.peerMRU = c.lcp.peerMRU
	c.auth.nextID = uint8(c.rng.Uint32())
	c.echo.nextID = uint8(c.rng.Uint32())
	return c
}

func (c *Conn) sender(proto uint16) func(frame.Packet) {
	return func(p frame.Packet) { c.sendPacket(proto, p) }
}

func (c *Conn) sendPacket(proto uint16, p frame.Packet) {
	c.out = append(c.out, Send{Frame: p.Frame(nil, proto)})
}

func (c *Conn) logf(level slog.Level, msg string, args ...any) {
	c.out = append(c.out, Log{Level: level, Msg: msg, Args: args})
}

func (c *Conn) flush() []Action {
	out := c.out
	c.out = nil
	return out
}

// newMagic is a random non-zero magic number.
func (c *Conn) newMagic() uint32 {
	for {
		if m := c.rng.Uint32(); m != 0 {
			return m
		}
	}
}

// randomID is a random non-zero interface identifier with the
// universal/local bit cleared: local scope (RFC 5072 section 4.1, RFC
// 4291 appendix A).
func (c *Conn) randomID() [8]byte {
	for {
		var id [8]byte
		v := c.rng.Uint64()
		for i := range id {
			id[i] = byte(v >> (56 - 8*i))
		}
		id[0] &^= 0x02
		if id != ([8]byte{}) {
			return id
		}
	}
}

// Phase is where the link is.
func (c *Conn) Phase() Phase { return c.phase }

// Err is why the link finished; nil while it has not.
func (c *Conn) Err() error { return c.err }

// Done reports whether the link finished.
func (c *Conn) Done() bool { return c.finished }

// Status is a snapshot of the link for status and logs.
type Status struct {
	Phase  Phase
	LCP    State
	IPV6CP State
	// Auth names the login protocol the peer asked for: "CHAP-MD5",
	// "PAP", or "" for none (yet).
	Auth string
	// Local and Peer are the interface identifiers (Peer zero until the
	// peer's is acknowledged); MRU the largest packet braid may send and
	// receive.
	Local, Peer [8]byte
	MRU         int
	// EchoRTT is the round trip of the last answered LCP echo, zero
	// before one; EchoesUnanswered counts echoes since the last answer.
	EchoRTT          time.Duration
	EchoesUnanswered int
	// Err is why the link finished.
	Err error
}

// Status reports the link.
func (c *Conn) Status() Status {
	s := Status{Phase: c.phase, LCP: c.lcp.state, IPV6CP: c.ipv6cp.state, Local: c.v6Opts.local,
		Peer: c.v6Opts.peer, MRU: c.mru(), EchoRTT: c.echo.rtt, EchoesUnanswered: c.echo.outstanding, Err: c.err}
	switch c.lcpOpts.authProto {
	case frame.ProtoCHAP:
		s.Auth = "CHAP-MD5"
	case frame.ProtoPAP:
		s.Auth = "PAP"
	}
	return s
}

// mru is the largest packet both sides accept.
func (c *Conn) mru() int {
	own := c.lcpOpts.mru
	if own == 0 {
		own = DefaultMRU
	}
	return min(own, c.lcpOpts.peerMRU)
}

// Deadline is when the Conn wants Timeout; zero means never.
func (c *Conn) Deadline() time.Time {
	var d time.Time
	for _, t := range []time.Time{c.lcp.deadline(), c.ipv6cp.deadline(), c.auth.due, c.auth.deadline, c.echo.due} {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

// Open starts the link: the lower layer (the L2TP session) is up and LCP
// opens.
func (c *Conn) Open(now time.Time) []Action {
	c.now = now
	if c.finished || c.phase != Dead {
		return nil
	}
	c.phase = Establish
	c.lcp.Open(now)
	c.lcp.Up(now)
	return c.flush()
}

// Close terminates the link: LCP sends a Terminate-Request, and the Conn
// finishes when it is answered or its retransmissions run out.
func (c *Conn) Close(now time.Time) []Action {
	c.now = now
	if c.finished {
		return nil
	}
	if c.phase == Dead {
		c.finish(ErrClosed)
		return c.flush()
	}
	c.closeLCP(now, ErrClosed)
	return c.flush()
}

// closeLCP closes LCP for why; the link finishes at once when LCP was not
// negotiating (nothing to terminate), else when the Terminate-Request is
// answered or its retransmissions run out.
func (c *Conn) closeLCP(now time.Time, why error) {
	c.lcp.Close(now, why)
	switch c.lcp.state {
	case Closing:
		c.phase = Terminate
	case Closed, Initial:
		c.finish(c.lcp.reason)
	}
}

// Timeout runs the timers that expired by now.
func (c *Conn) Timeout(now time.Time) []Action {
	c.now = now
	if c.finished {
		return nil
	}
	c.lcp.Timeout(now)
	c.ipv6cp.Timeout(now)
	c.authTimeout(now)
	c.echoTimeout(now)
	return c.flush()
}

// finish ends the link for err.
func (c *Conn) finish(err error) {
	if c.finished {
		return
	}
	if err == nil {
		err = ErrClosed
	}
	c.finished, c.err, c.phase = true, err, Dead
	c.auth.stop()
	c.echo.stop()
	c.out = append(c.out, Finished{Err: err})
}

// fail closes the link for err.
func (c *Conn) fail(now time.Time, err error) {
	c.logf(slog.LevelWarn, "PPP link failing", "reason", err)
	c.closeLCP(now, err)
}

// Input handles one frame from the peer.
func (c *Conn) Input(b []byte, now time.Time) []Action {
	c.now = now
	if c.finished || c.phase == Dead {
		return nil
	}
	f, err := frame.Parse(b)
	if err != nil {
		return nil
	}
	switch f.Protocol {
	case frame.ProtoLCP:
		if p, err := frame.ParsePacket(f.Info); err == nil {
			c.lcp.Receive(p, now)
		}
		return c.flush()
	}
	// RFC 1661 section 3.4: before LCP is Opened, and while it
	// authenticates, only LCP and the authentication protocol count.
	if c.lcp.state != Opened {
		return nil
	}
	switch f.Protocol {
	case frame.ProtoCHAP:
		c.inputCHAP(f.Info, now)
		return c.flush()
	case frame.ProtoPAP:
		c.inputPAP(f.Info, now)
		return c.flush()
	}
	if c.phase != Network {
		return nil
	}
	switch f.Protocol {
	case frame.ProtoIPV6CP:
		if p, err := frame.ParsePacket(f.Info); err == nil {
			c.ipv6cp.Receive(p, now)
		}
	case frame.ProtoIPv6:
		// The data plane's; here only before IPV6CP is up: discarded.
	default:
		c.protocolReject(f.Protocol, f.Info)
	}
	return c.flush()
}

// protocolReject rejects a protocol braid does not speak (RFC 1661
// section 5.7), truncated to the peer's MRU.
func (c *Conn) protocolReject(proto uint16, info []byte) {
	room := c.lcpOpts.peerMRU - frame.PacketHeaderLen - 2
	if len(info) > room {
		info = info[:room]
	}
	c.logf(slog.LevelDebug, "PPP Protocol-Reject", "protocol", frame.ProtocolName(proto))
	c.lcp.send(frame.Packet{Code: frame.ProtocolReject, ID: c.lcp.nextID, Data: frame.ProtoReject(proto, info)})
	c.lcp.nextID++
}

// lcpUp is LCP's This-Layer-Up: authenticate if the peer asked, then the
// network phase.
func (c *Conn) lcpUp(now time.Time) {
	c.logf(slog.LevelDebug, "PPP LCP opened", "mru", c.mru(), "auth", c.Status().Auth)
	c.echo.start(c, now)
	if c.lcpOpts.authProto != 0 {
		c.phase = Authenticate
		c.startAuth(now)
		return
	}
	c.networkUp(now)
}

// lcpDown is LCP's This-Layer-Down: the network layer goes down with it.
func (c *Conn) lcpDown(now time.Time) {
	c.echo.stop()
	c.auth.stop()
	c.ipv6cp.Down(now)
	if c.phase != Terminate {
		c.phase = Establish
	}
}

// lcpFinished is LCP's This-Layer-Finished: the link is dead.
func (c *Conn) lcpFinished(now time.Time) {
	c.finish(c.lcp.reason)
}

// networkUp starts the network phase: IPV6CP.
func (c *Conn) networkUp(now time.Time) {
	c.phase = Network
	c.ipv6cp.Open(now)
	c.ipv6cp.Up(now)
}

// ipv6Up is IPV6CP's This-Layer-Up.
func (c *Conn) ipv6Up(now time.Time) {
	up := Up{Local: c.v6Opts.local, Peer: c.v6Opts.peer, MRU: c.mru()}
	if c.upOnce != nil && *c.upOnce != up {
		c.fail(now, fmt.Errorf("%w: identifiers %x/%x, MRU %d, after %x/%x, MRU %d", ErrRenegotiated,
			up.Local, up.Peer, up.MRU, c.upOnce.Local, c.upOnce.Peer, c.upOnce.MRU))
		return
	}
	c.upOnce = &up
	c.out = append(c.out, up)
}

// ipv6Down is IPV6CP's This-Layer-Down.
func (c *Conn) ipv6Down(now time.Time) {
	why := c.ipv6cp.reason
	if why == nil {
		why = c.lcp.reason
	}
	if why == nil {
		why = errors.New("IPV6CP renegotiating")
	}
	c.out = append(c.out, Down{Why: why})
}

// ipv6Finished is IPV6CP's This-Layer-Finished: without IPv6 the link
// has no use, so it closes.
func (c *Conn) ipv6Finished(now time.Time) {
	if c.lcp.state != Opened {
		return // LCP is going down already
	}
	why := c.ipv6cp.reason
	if why == nil {
		why = fmt.Errorf("%w: IPV6CP finished", ErrNotConverged)
	}
	c.fail(now, why)
}
