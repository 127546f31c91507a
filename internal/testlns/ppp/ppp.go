// Package ppp is the LNS side of PPP for braid's test LNS: it negotiates
// LCP (RFC 1661: it asks for the Authentication-Protocol and a
// Magic-Number, acknowledges a LAC's MRU, ACCM and Magic-Number, rejects
// the rest), authenticates the LAC with CHAP-MD5 (RFC 1994) or PAP (RFC
// 1334) against one login, negotiates IPV6CP (RFC 5072: its own
// interface identifier, a Nak with another for a LAC's zero or equal
// one), answers LCP Echo-Requests, Protocol-Rejects what it does not
// speak (IPCP included) and answers a Terminate-Request.
//
// It is a test peer, not RFC 1661's automaton: each control protocol's
// side of the negotiation is two flags (its own request acknowledged, the
// LAC's acknowledged), its request is sent again every Restart until
// acknowledged, MaxConfigure times at most. The real LNS (pppd behind
// xl2tpd) remains the conformance test of braid's PPP. Like braid's own
// PPP (sessions/ppp/rfc1661) it has no socket and no clock: a Conn is
// driven by Open, Input and Timeout, each given the current time, and
// returns Actions; frames are read and written with braid's codec,
// sessions/ppp/frame.
package ppp

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// Errors a link finishes with (Down.Err).
var (
	// ErrAuth: the LAC's login or password was wrong.
	ErrAuth = errors.New("PPP authentication failed")
	// ErrTerminated: the LAC sent a Terminate-Request.
	ErrTerminated = errors.New("PPP link terminated by the LAC")
	// ErrNegotiation: a request went unacknowledged MaxConfigure times,
	// or the LAC refused what the LNS needs (authentication, IPV6CP).
	ErrNegotiation = errors.New("PPP negotiation failed")
)

// Auth is how the LNS authenticates the LAC.
type Auth string

// The authentication protocols.
const (
	CHAP Auth = "chap"
	PAP  Auth = "pap"
)

// Config is what a Conn needs.
type Config struct {
	// Auth is CHAP (the default) or PAP.
	Auth Auth
	// User and Password are the one login the LNS accepts.
	User     string
	Password []byte
	// Name is the LNS's name in CHAP Challenges.
	Name string
	// InterfaceID is the LNS's IPV6CP interface identifier (its
	// link-local address is fe80::InterfaceID).
	InterfaceID [8]byte
	// Restart is the retransmission interval (1 s when zero),
	// MaxConfigure how many times a request is sent at most (10).
	Restart      time.Duration
	MaxConfigure int
	// Rand is the source of magic numbers, challenges and suggested
	// interface identifiers; nil is not allowed.
	Rand io.Reader
}

// Action is something a Conn's caller carries out.
type Action interface{ action() }

// Send sends Frame (a PPP frame, address and control fields included)
// to the LAC.
type Send struct{ Frame []byte }

// Authenticated: the LAC logged in as Login.
type Authenticated struct{ Login string }

// Up: IPV6CP is open; IPv6 flows. PeerID is the LAC's interface
// identifier.
type Up struct{ PeerID [8]byte }

// Down: the link is over (the session should end); Err says why.
type Down struct{ Err error }

func (Send) action()          {}
func (Authenticated) action() {}
func (Up) action()            {}
func (Down) action()          {}

// Phase is where a Conn is.
type Phase int

// The phases of a link (RFC 1661 section 3.2).
const (
	Establish Phase = iota
	Authenticate
	Network
	// Terminate: the LNS sent a Terminate-Request and waits for the Ack
	// (or two restart intervals) before the link is Down, as pppd does:
	// the LAC reads the CHAP Failure before the session goes.
	Terminate
	Dead
)

// side is one control protocol's negotiation.
type side struct {
	proto   uint16
	id      uint8
	opts    []frame.Option // the LNS's current request
	acked   bool           // the LAC acknowledged the LNS's request
	ackSent bool           // the LNS acknowledged the LAC's
	sends   int
	due     time.Time
	opened  bool
}

// Conn is the LNS side of one PPP link.
type Conn struct {
	cfg   Config
	phase Phase
	out   []Action

	lcp, ipv6cp side
	magic       uint32
	peerID      [8]byte

	// Authentication.
	authID    uint8
	challenge []byte
	authSends int
	authDue   time.Time
	login     string
	authed    bool

	// Termination.
	termErr   error
	termSends int
	termDue   time.Time
}

// New returns a link in the Establish phase; Open starts it.
func New(cfg Config) *Conn {
	if cfg.Restart <= 0 {
		cfg.Restart = time.Second
	}
	if cfg.MaxConfigure <= 0 {
		cfg.MaxConfigure = 10
	}
	if cfg.Auth == "" {
		cfg.Auth = CHAP
	}
	return &Conn{cfg: cfg, lcp: side{proto: frame.ProtoLCP}, ipv6cp: side{proto: frame.ProtoIPV6CP}}
}

// Phase returns where c is.
func (c *Conn) Phase() Phase { return c.phase }

// IPv6Up reports whether IPV6CP is open: IPv6 frames may flow.
func (c *Conn) IPv6Up() bool { return c.phase == Network && c.ipv6cp.opened }

// Login is the login the LAC authenticated with ("" until it did).
func (c *Conn) Login() string { return c.login }

// Deadline is when Timeout is due next; zero when no timer runs.
func (c *Conn) Deadline() time.Time {
	var d time.Time
	for _, t := range []time.Time{c.lcp.due, c.ipv6cp.due, c.authDue, c.termDue} {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

func (c *Conn) flush() []Action {
	a := c.out
	c.out = nil
	return a
}

func (c *Conn) send(proto uint16, p frame.Packet) {
	c.out = append(c.out, Send{Frame: p.Frame(nil, proto)})
}

func (c *Conn) random(b []byte) {
	if _, err := io.ReadFull(c.cfg.Rand, b); err != nil {
		panic(fmt.Sprintf("testlns/ppp: randomness: %v", err)) // a test LNS with no randomness is a broken test
	}
}

func (c *Conn) newMagic() uint32 {
	var b [4]byte
	for {
		c.random(b[:])
		if m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]); m != 0 && m != c.magic {
			return m
		}
	}
}

// Open starts LCP: the LNS's Configure-Request.
func (c *Conn) Open(now time.Time) []Action {
	c.magic = c.newMagic()
	c.lcp.opts = []frame.Option{c.authOption(), frame.Magic(c.magic)}
	c.request(&c.lcp, now, true)
	return c.flush()
}

func (c *Conn) authOption() frame.Option {
	if c.cfg.Auth == PAP {
		return frame.AuthPAP()
	}
	return frame.AuthCHAPMD5()
}

// request sends s's Configure-Request, a new one (new identifier) or the
// same again.
func (c *Conn) request(s *side, now time.Time, fresh bool) {
	if fresh {
		s.id++
		s.sends = 0
	}
	s.sends++
	s.due = now.Add(c.cfg.Restart)
	c.send(s.proto, frame.Packet{Code: frame.ConfigureRequest, ID: s.id, Data: frame.EncodeOptions(s.opts)})
}

// finish ends the link with err.
func (c *Conn) finish(err error) {
	if c.phase == Dead {
		return
	}
	c.phase = Dead
	c.lcp.due, c.ipv6cp.due, c.authDue, c.termDue = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	c.out = append(c.out, Down{Err: err})
}

// fail terminates the link: an LCP Terminate-Request, and Down once the
// LAC acknowledges it or two restart intervals have passed.
func (c *Conn) fail(err error, now time.Time) {
	if c.phase == Dead || c.phase == Terminate {
		return
	}
	c.phase, c.termErr, c.termSends = Terminate, err, 0
	c.lcp.due, c.ipv6cp.due, c.authDue = time.Time{}, time.Time{}, time.Time{}
	c.sendTerminate(now)
}

func (c *Conn) sendTerminate(now time.Time) {
	c.termSends++
	c.termDue = now.Add(c.cfg.Restart)
	c.lcp.id++
	c.send(frame.ProtoLCP, frame.Packet{Code: frame.TerminateRequest, ID: c.lcp.id, Data: []byte(c.termErr.Error())})
}

// Close terminates the link from the LNS's side.
func (c *Conn) Close(now time.Time) []Action {
	c.fail(errors.New("closed by the LNS"), now)
	return c.flush()
}

// Timeout runs the timers due at now: retransmissions.
func (c *Conn) Timeout(now time.Time) []Action {
	if c.phase == Terminate {
		if !c.termDue.IsZero() && !now.Before(c.termDue) {
			if c.termSends >= 2 {
				c.finish(c.termErr)
			} else {
				c.sendTerminate(now)
			}
		}
		return c.flush()
	}
	for _, s := range []*side{&c.lcp, &c.ipv6cp} {
		if s.due.IsZero() || now.Before(s.due) {
			continue
		}
		if s.sends >= c.cfg.MaxConfigure {
			c.fail(fmt.Errorf("%w: %s Configure-Request unacknowledged %d times", ErrNegotiation, frame.ProtocolName(s.proto), s.sends), now)
			return c.flush()
		}
		c.request(s, now, false)
	}
	if !c.authDue.IsZero() && !now.Before(c.authDue) {
		if c.authSends >= c.cfg.MaxConfigure {
			c.fail(fmt.Errorf("%w: no CHAP Response", ErrAuth), now)
			return c.flush()
		}
		c.sendChallenge(now)
	}
	return c.flush()
}

// Input takes a PPP frame from the LAC that is not IPv6 data (the
// caller carries those itself while IPv6Up).
func (c *Conn) Input(b []byte, now time.Time) []Action {
	if c.phase == Dead {
		return nil
	}
	f, err := frame.Parse(b)
	if err != nil {
		return nil
	}
	if c.phase == Terminate {
		// RFC 1661 4.2 (Closing): Terminate-Requests and -Acks only.
		if p, err := frame.ParsePacket(f.Info); err == nil && f.Protocol == frame.ProtoLCP {
			switch p.Code {
			case frame.TerminateRequest:
				c.send(frame.ProtoLCP, frame.Packet{Code: frame.TerminateAck, ID: p.ID})
				c.finish(c.termErr)
			case frame.TerminateAck:
				c.finish(c.termErr)
			}
		}
		return c.flush()
	}
	switch f.Protocol {
	case frame.ProtoLCP:
		if p, err := frame.ParsePacket(f.Info); err == nil {
			c.inputLCP(p, now)
		}
	case frame.ProtoCHAP:
		if c.phase == Authenticate && c.cfg.Auth == CHAP {
			if r, err := frame.ParseCHAP(f.Info); err == nil && r.Code == frame.CHAPResponse {
				c.chapResponse(r, now)
			}
		}
	case frame.ProtoPAP:
		if c.phase == Authenticate && c.cfg.Auth == PAP {
			if r, err := frame.ParsePAP(f.Info); err == nil && r.Code == frame.PAPRequest {
				c.papRequest(r, now)
			}
		}
	case frame.ProtoIPV6CP:
		if c.phase == Network {
			if p, err := frame.ParsePacket(f.Info); err == nil {
				c.inputIPV6CP(p, now)
			}
		}
	default:
		// RFC 1661 5.7: what the LNS does not speak, once LCP is open
		// (IPCP, IPv4, CCP, ...).
		if c.lcp.opened {
			c.lcp.id++
			c.send(frame.ProtoLCP, frame.Packet{Code: frame.ProtocolReject, ID: c.lcp.id, Data: frame.ProtoReject(f.Protocol, f.Info)})
		}
	}
	return c.flush()
}

func (c *Conn) inputLCP(p frame.Packet, now time.Time) {
	switch p.Code {
	case frame.ConfigureRequest:
		if c.lcp.opened {
			// The LAC renegotiates: start over (RFC 1661's tld, then
			// scr and the new request's answer).
			c.restartLCP(now)
		}
		opts, err := frame.ParseOptions(p.Data)
		if err != nil {
			return
		}
		code, reply := c.checkLCP(opts)
		c.send(frame.ProtoLCP, frame.Packet{Code: code, ID: p.ID, Data: frame.EncodeOptions(reply)})
		if code == frame.ConfigureAck {
			c.lcp.ackSent = true
			c.lcpMaybeUp(now)
		}
	case frame.ConfigureAck:
		if p.ID == c.lcp.id && bytes.Equal(p.Data, frame.EncodeOptions(c.lcp.opts)) && !c.lcp.opened {
			c.lcp.acked = true
			c.lcp.due = time.Time{}
			c.lcpMaybeUp(now)
		}
	case frame.ConfigureNak, frame.ConfigureReject:
		if p.ID != c.lcp.id || c.lcp.opened {
			return
		}
		opts, err := frame.ParseOptions(p.Data)
		if err != nil {
			return
		}
		for _, o := range opts {
			switch o.Type {
			case frame.LCPAuthProtocol:
				c.fail(fmt.Errorf("%w: the LAC refuses to authenticate with %s", ErrNegotiation, c.cfg.Auth), now)
				return
			case frame.LCPMagic:
				if p.Code == frame.ConfigureReject {
					c.lcp.opts = []frame.Option{c.authOption()}
				} else {
					c.magic = c.newMagic()
					c.lcp.opts = []frame.Option{c.authOption(), frame.Magic(c.magic)}
				}
			}
		}
		c.request(&c.lcp, now, true)
	case frame.TerminateRequest:
		c.send(frame.ProtoLCP, frame.Packet{Code: frame.TerminateAck, ID: p.ID})
		c.finish(ErrTerminated)
	case frame.EchoRequest:
		if c.lcp.opened {
			var rest []byte
			if len(p.Data) >= 4 {
				rest = p.Data[4:]
			}
			c.send(frame.ProtoLCP, frame.Packet{Code: frame.EchoReply, ID: p.ID, Data: frame.Echo(c.magic, rest)})
		}
	case frame.ProtocolReject:
		if proto, ok := frame.RejectedProtocol(p.Data); ok && proto == frame.ProtoIPV6CP {
			c.fail(fmt.Errorf("%w: the LAC rejects IPV6CP", ErrNegotiation), now)
		}
	case frame.TerminateAck, frame.EchoReply, frame.DiscardRequest, frame.CodeReject:
	default:
		c.lcp.id++
		c.send(frame.ProtoLCP, frame.Packet{Code: frame.CodeReject, ID: c.lcp.id, Data: p.Append(nil)})
	}
}

// checkLCP answers the LAC's LCP options: Ack when all are acceptable,
// else Reject of those the LNS does not take.
func (c *Conn) checkLCP(opts []frame.Option) (uint8, []frame.Option) {
	var rej []frame.Option
	for _, o := range opts {
		switch o.Type {
		case frame.LCPMRU:
			if n, ok := o.Uint16(); ok && n >= 576 {
				continue
			}
		case frame.LCPACCM:
			if _, ok := o.Uint32(); ok {
				continue
			}
		case frame.LCPMagic:
			if m, ok := o.Uint32(); ok && m != 0 {
				continue
			}
		}
		rej = append(rej, o)
	}
	if len(rej) > 0 {
		return frame.ConfigureReject, rej
	}
	return frame.ConfigureAck, opts
}

func (c *Conn) restartLCP(now time.Time) {
	wasUp := c.IPv6Up()
	c.phase = Establish
	c.lcp.acked, c.lcp.ackSent, c.lcp.opened = false, false, false
	c.ipv6cp = side{proto: frame.ProtoIPV6CP, id: c.ipv6cp.id}
	c.authed, c.authDue, c.login = false, time.Time{}, ""
	if wasUp {
		c.out = append(c.out, Down{Err: errors.New("LCP renegotiated")})
		c.phase = Dead
		return
	}
	c.request(&c.lcp, now, true)
}

func (c *Conn) lcpMaybeUp(now time.Time) {
	if !c.lcp.acked || !c.lcp.ackSent || c.lcp.opened {
		return
	}
	c.lcp.opened = true
	c.phase = Authenticate
	if c.cfg.Auth == CHAP {
		c.authID = 0
		c.sendChallenge(now)
	}
	// PAP: the LAC sends its Authenticate-Request.
}

func (c *Conn) sendChallenge(now time.Time) {
	c.authID++
	c.authSends++
	c.challenge = make([]byte, 16)
	c.random(c.challenge)
	c.authDue = now.Add(c.cfg.Restart)
	c.out = append(c.out, Send{Frame: frame.CHAP{Code: frame.CHAPChallenge, ID: c.authID, Value: c.challenge, Name: []byte(c.cfg.Name)}.
		Append(frame.Append(nil, frame.ProtoCHAP, nil))})
}

func (c *Conn) chapResponse(r frame.CHAP, now time.Time) {
	if r.ID != c.authID {
		return
	}
	want := frame.CHAPMD5(r.ID, c.cfg.Password, c.challenge)
	ok := string(r.Name) == c.cfg.User && subtle.ConstantTimeCompare(r.Value, want[:]) == 1
	c.authDue = time.Time{}
	if !ok {
		c.out = append(c.out, Send{Frame: frame.CHAP{Code: frame.CHAPFailure, ID: r.ID, Message: []byte("Access denied")}.
			Append(frame.Append(nil, frame.ProtoCHAP, nil))})
		c.fail(fmt.Errorf("%w: CHAP login %q", ErrAuth, r.Name), now)
		return
	}
	c.out = append(c.out, Send{Frame: frame.CHAP{Code: frame.CHAPSuccess, ID: r.ID, Message: []byte("Access granted")}.
		Append(frame.Append(nil, frame.ProtoCHAP, nil))})
	c.authenticated(string(r.Name), now)
}

func (c *Conn) papRequest(r frame.PAP, now time.Time) {
	ok := string(r.PeerID) == c.cfg.User && subtle.ConstantTimeCompare(r.Password, c.cfg.Password) == 1
	if !ok {
		c.out = append(c.out, Send{Frame: frame.PAP{Code: frame.PAPNak, ID: r.ID, Message: []byte("Login incorrect")}.
			Append(frame.Append(nil, frame.ProtoPAP, nil))})
		c.fail(fmt.Errorf("%w: PAP login %q", ErrAuth, r.PeerID), now)
		return
	}
	c.out = append(c.out, Send{Frame: frame.PAP{Code: frame.PAPAck, ID: r.ID, Message: []byte("Login ok")}.
		Append(frame.Append(nil, frame.ProtoPAP, nil))})
	c.authenticated(string(r.PeerID), now)
}

func (c *Conn) authenticated(login string, now time.Time) {
	if c.authed {
		return
	}
	c.authed, c.login = true, login
	c.out = append(c.out, Authenticated{Login: login})
	c.phase = Network
	c.ipv6cp.opts = []frame.Option{frame.InterfaceID(c.cfg.InterfaceID)}
	c.request(&c.ipv6cp, now, true)
}

func (c *Conn) inputIPV6CP(p frame.Packet, now time.Time) {
	s := &c.ipv6cp
	switch p.Code {
	case frame.ConfigureRequest:
		opts, err := frame.ParseOptions(p.Data)
		if err != nil {
			return
		}
		if s.opened {
			// Renegotiation: IPv6 is down until it is open again.
			s.opened, s.acked, s.ackSent = false, false, false
			c.request(s, now, true)
		}
		code, reply := c.checkIPV6CP(opts)
		c.send(frame.ProtoIPV6CP, frame.Packet{Code: code, ID: p.ID, Data: frame.EncodeOptions(reply)})
		if code == frame.ConfigureAck {
			s.ackSent = true
			c.ipv6cpMaybeUp()
		}
	case frame.ConfigureAck:
		if p.ID == s.id && !s.opened && bytes.Equal(p.Data, frame.EncodeOptions(s.opts)) {
			s.acked, s.due = true, time.Time{}
			c.ipv6cpMaybeUp()
		}
	case frame.ConfigureNak, frame.ConfigureReject:
		// The LNS's identifier is fixed: a Nak or Reject of it is the
		// LAC's problem; ask again.
		if p.ID == s.id && !s.opened {
			c.request(s, now, true)
		}
	case frame.TerminateRequest:
		c.send(frame.ProtoIPV6CP, frame.Packet{Code: frame.TerminateAck, ID: p.ID})
		c.fail(fmt.Errorf("%w: the LAC closed IPV6CP", ErrNegotiation), now)
	}
}

func (c *Conn) checkIPV6CP(opts []frame.Option) (uint8, []frame.Option) {
	var rej, nak []frame.Option
	for _, o := range opts {
		if o.Type != frame.IPV6CPInterfaceID {
			rej = append(rej, o)
			continue
		}
		id, ok := o.InterfaceID()
		if !ok {
			rej = append(rej, o)
			continue
		}
		if id == ([8]byte{}) || id == c.cfg.InterfaceID {
			var s [8]byte
			for s == ([8]byte{}) || s == c.cfg.InterfaceID {
				c.random(s[:])
			}
			nak = append(nak, frame.InterfaceID(s))
			continue
		}
		c.peerID = id
	}
	switch {
	case len(rej) > 0:
		return frame.ConfigureReject, rej
	case len(nak) > 0:
		return frame.ConfigureNak, nak
	}
	return frame.ConfigureAck, opts
}

func (c *Conn) ipv6cpMaybeUp() {
	s := &c.ipv6cp
	if s.acked && s.ackSent && !s.opened {
		s.opened = true
		c.out = append(c.out, Up{PeerID: c.peerID})
	}
}
