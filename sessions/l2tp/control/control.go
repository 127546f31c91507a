package control

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/braid-router/braid/sessions/l2tp/avp"
)

// Why a connection went down, for errors.Is. Each Down error wraps one of
// them with the details: "tunnel authentication failed: wrong secret?
// (...)".
var (
	// ErrAuth: tunnel authentication failed, one way or the other; most
	// likely the secrets differ. Retrying soon will not help.
	ErrAuth = errors.New("tunnel authentication failed")
	// ErrRefused: the LNS answered the SCCRQ with a StopCCN.
	ErrRefused = errors.New("the LNS refused the tunnel")
	// ErrClosed: the LNS closed an established tunnel (StopCCN).
	ErrClosed = errors.New("the LNS closed the tunnel")
	// ErrSessionClosed: the LNS refused or closed the session (CDN).
	ErrSessionClosed = errors.New("the LNS closed the session")
	// ErrNoAnswer: the LNS stopped acknowledging messages.
	ErrNoAnswer = errors.New("no answer from the LNS")
	// ErrProtocol: the LNS sent something this LAC cannot go on with (an
	// unknown mandatory AVP, a reply without a required AVP).
	ErrProtocol = errors.New("L2TP protocol error")
)

// Timing holds the control connection's timers; a zero field takes the
// default given.
type Timing struct {
	// Retransmit is the first retransmission timeout (1 s); each next
	// one doubles, up to RetransmitCap (8 s, the least RFC 2661 5.8
	// allows as a cap).
	Retransmit, RetransmitCap time.Duration
	// Retries is how many retransmissions without an acknowledgement end
	// the connection (5, RFC 2661 5.8's recommendation).
	Retries int
	// Hello is how long without a message from the peer before a HELLO
	// is sent (60 s).
	Hello time.Duration
}

func (t Timing) withDefaults() Timing {
	if t.Retransmit <= 0 {
		t.Retransmit = time.Second
	}
	if t.RetransmitCap <= 0 {
		t.RetransmitCap = 8 * time.Second
	}
	if t.RetransmitCap < t.Retransmit {
		t.RetransmitCap = t.Retransmit
	}
	if t.Retries <= 0 {
		t.Retries = 5
	}
	if t.Hello <= 0 {
		t.Hello = 60 * time.Second
	}
	return t
}

// Config is what a Conn needs.
type Config struct {
	// Hostname is this LAC's Host Name AVP; "braid" when empty.
	Hostname string
	// Secret is the tunnel secret shared with the LNS, for tunnel
	// authentication and hidden AVPs. It may be empty.
	Secret []byte
	// SkipChallenge: do not challenge the LNS even with a secret (the
	// LNS may still challenge this side).
	SkipChallenge bool
	// ReceiveWindow is the Receive Window Size this side advertises:
	// how many messages ahead of the expected one it keeps (4).
	ReceiveWindow uint16
	// ConnectSpeed is the (Tx) Connect Speed of the ICCN, in bit/s (1e9).
	ConnectSpeed uint32
	// Timing are the timers; zero fields take the defaults.
	Timing Timing
	// Rand is the source of the tunnel and session IDs, the call serial
	// number and the challenge; nil is crypto/rand.
	Rand io.Reader
}

// Phase is where a Conn is.
type Phase int

// The phases of a Conn, in order.
const (
	// Idle: not started.
	Idle Phase = iota
	// WaitSCCRP: the SCCRQ is sent.
	WaitSCCRP
	// WaitICRP: the tunnel is up (SCCCN sent), the ICRQ is sent.
	WaitICRP
	// WaitICCNAck: the ICCN is sent; the session is up once the LNS
	// acknowledges it.
	WaitICCNAck
	// Established: the tunnel and the session are up.
	Established
	// Stopping: the StopCCN is sent, its acknowledgement awaited.
	Stopping
	// Done: the connection is over.
	Done
)

// String names the phase for status.
func (p Phase) String() string {
	switch p {
	case Idle:
		return "idle"
	case WaitSCCRP:
		return "connecting"
	case WaitICRP:
		return "calling"
	case WaitICCNAck:
		return "connecting session"
	case Established:
		return "established"
	case Stopping:
		return "stopping"
	case Done:
		return "closed"
	}
	return fmt.Sprintf("phase %d", int(p))
}

// Action is what a Conn asks its caller to do.
type Action interface{ action() }

// Send: send Msg to the LNS (Ns and Nr are filled in).
type Send struct{ Msg avp.Message }

// TunnelUp: the control connection is established.
type TunnelUp struct {
	LocalTunnel, PeerTunnel uint16
	// PeerHost is the LNS's Host Name AVP.
	PeerHost string
}

// SessionUp: the session is established (the ICCN is acknowledged):
// data messages may flow.
type SessionUp struct {
	LocalTunnel, LocalSession, PeerTunnel, PeerSession uint16
}

// Down: the connection failed or the LNS ended it; Err wraps one of the
// package's Err values. Messages may still be sent until Closed.
type Down struct{ Err error }

// Closed: the connection is over; nothing more will be sent.
type Closed struct{}

func (Send) action()      {}
func (TunnelUp) action()  {}
func (SessionUp) action() {}
func (Down) action()      {}
func (Closed) action()    {}

// outstanding is a sent message not yet acknowledged.
type outstanding struct{ msg avp.Message }

// Conn is one attempt at an L2TP control connection with one session,
// from the LAC's side. A Conn is not safe for concurrent use.
type Conn struct {
	cfg   Config
	t     Timing
	phase Phase

	localTunnel, peerTunnel   uint16
	localSession, peerSession uint16
	peerHost                  string
	// sync: the LNS offered synchronous framing.
	sync bool
	// challenge is the one sent in the SCCRQ, if any.
	challenge []byte
	// answered: this side answered the LNS's challenge in its SCCCN.
	answered bool
	// iccnNs and stopNs are the Ns of the ICCN and StopCCN, when sent.
	iccnNs, stopNs uint16
	down           bool

	// ns is the next Ns to send, nr the next expected from the peer.
	ns, nr     uint16
	peerWindow uint16
	// sent are the unacknowledged messages, oldest first; queued wait for
	// room in the peer's window.
	sent   []outstanding
	queued []avp.Message
	// ahead are received messages past a gap, by Ns.
	ahead map[uint16]avp.Message

	rto      time.Duration
	retries  int
	rtxDue   time.Time
	helloDue time.Time
}

// New returns a Conn for cfg, Idle.
func New(cfg Config) *Conn {
	if cfg.Hostname == "" {
		cfg.Hostname = "braid"
	}
	if cfg.ReceiveWindow == 0 {
		cfg.ReceiveWindow = 4
	}
	if cfg.ConnectSpeed == 0 {
		cfg.ConnectSpeed = 1_000_000_000
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Conn{cfg: cfg, t: cfg.Timing.withDefaults(), peerWindow: 1, ahead: map[uint16]avp.Message{}}
}

// Phase is where c is.
func (c *Conn) Phase() Phase { return c.phase }

// IDs are the tunnel and session IDs, 0 where not assigned yet.
func (c *Conn) IDs() (localTunnel, localSession, peerTunnel, peerSession uint16) {
	return c.localTunnel, c.localSession, c.peerTunnel, c.peerSession
}

// PeerHost is the LNS's Host Name, once known.
func (c *Conn) PeerHost() string { return c.peerHost }

// Deadline is when Timeout is due next; zero when nothing is timed.
func (c *Conn) Deadline() time.Time {
	d := c.rtxDue
	if !c.helloDue.IsZero() && (d.IsZero() || c.helloDue.Before(d)) {
		d = c.helloDue
	}
	return d
}

// random returns a random nonzero 16-bit value.
func (c *Conn) random16() (uint16, error) {
	var b [2]byte
	for {
		if _, err := io.ReadFull(c.cfg.Rand, b[:]); err != nil {
			return 0, fmt.Errorf("random ID: %w", err)
		}
		if v := binary.BigEndian.Uint16(b[:]); v != 0 {
			return v, nil
		}
	}
}

// Start begins the connection: random tunnel and session IDs, and the
// SCCRQ. It fails only when the randomness does.
func (c *Conn) Start(now time.Time) ([]Action, error) {
	if c.phase != Idle {
		return nil, nil
	}
	var err error
	if c.localTunnel, err = c.random16(); err != nil {
		return nil, err
	}
	if c.localSession, err = c.random16(); err != nil {
		return nil, err
	}
	avps := []avp.AVP{
		avp.Uint16(avp.ProtocolVersion, 0x0100),
		avp.Uint32(avp.FramingCapabilities, 3), // synchronous and asynchronous
		avp.Uint32(avp.BearerCapabilities, 0),
		avp.String(avp.HostName, c.cfg.Hostname),
		avp.String(avp.VendorName, "braid"),
		avp.Uint16(avp.AssignedTunnelID, c.localTunnel),
		avp.Uint16(avp.ReceiveWindowSize, c.cfg.ReceiveWindow),
	}
	if len(c.cfg.Secret) > 0 && !c.cfg.SkipChallenge {
		c.challenge = make([]byte, 16)
		if _, err := io.ReadFull(c.cfg.Rand, c.challenge); err != nil {
			return nil, fmt.Errorf("random challenge: %w", err)
		}
		avps = append(avps, avp.New(avp.Challenge, c.challenge))
	}
	c.phase = WaitSCCRP
	return c.send(nil, avp.NewMessage(avp.SCCRQ, 0, 0, avps...), now), nil
}

// Stop ends the connection with result, the StopCCN's Result Code: a CDN
// for the session first, when the LNS knows it. Before the LNS answered,
// there is no one to tell, and c is Closed at once.
func (c *Conn) Stop(result avp.Result, now time.Time) []Action {
	switch c.phase {
	case Idle, WaitSCCRP:
		c.close()
		return []Action{Closed{}}
	case Stopping, Done:
		return nil
	}
	return c.stop(nil, result, now)
}

// stop sends a CDN (when the session exists on the LNS's side) and a
// StopCCN, and waits for the StopCCN's acknowledgement.
func (c *Conn) stop(acts []Action, result avp.Result, now time.Time) []Action {
	c.queued = nil
	c.helloDue = time.Time{}
	if c.peerSession != 0 && c.phase < Stopping {
		acts = c.send(acts, avp.NewMessage(avp.CDN, c.peerTunnel, c.peerSession,
			avp.NewResult(avp.Result{Code: avp.CDNAdmin, Message: result.Message}),
			avp.Uint16(avp.AssignedSessionID, c.localSession)), now)
	}
	c.phase = Stopping
	c.stopNs = c.ns + uint16(len(c.queued))
	return c.send(acts, avp.NewMessage(avp.StopCCN, c.peerTunnel, 0,
		avp.Uint16(avp.AssignedTunnelID, c.localTunnel), avp.NewResult(result)), now)
}

// fail reports err as Down and stops the connection with result.
func (c *Conn) fail(acts []Action, err error, result avp.Result, now time.Time) []Action {
	acts = c.downed(acts, err)
	if c.phase >= Stopping {
		return acts
	}
	return c.stop(acts, result, now)
}

func (c *Conn) downed(acts []Action, err error) []Action {
	if c.down {
		return acts
	}
	c.down = true
	return append(acts, Down{Err: err})
}

func (c *Conn) close() {
	c.phase = Done
	c.sent, c.queued = nil, nil
	c.rtxDue, c.helloDue = time.Time{}, time.Time{}
}

// send sends m, or queues it when the peer's window is full.
func (c *Conn) send(acts []Action, m avp.Message, now time.Time) []Action {
	if len(c.sent) >= int(c.peerWindow) {
		c.queued = append(c.queued, m)
		return acts
	}
	m.Ns, m.Nr = c.ns, c.nr
	c.ns++
	if len(c.sent) == 0 {
		c.rto, c.retries = c.t.Retransmit, 0
		c.rtxDue = now.Add(c.rto)
	}
	c.sent = append(c.sent, outstanding{msg: m})
	return append(acts, Send{Msg: m})
}

// zlb acknowledges what was received.
func (c *Conn) zlb(acts []Action) []Action {
	return append(acts, Send{Msg: avp.Message{TunnelID: c.peerTunnel, Ns: c.ns, Nr: c.nr}})
}

// ack takes nr, a received Nr: the peer has every message before it.
func (c *Conn) ack(acts []Action, nr uint16, now time.Time) []Action {
	// An Nr past what was sent acknowledges nothing.
	if int16(c.ns-nr) < 0 {
		return acts
	}
	n := 0
	for n < len(c.sent) && int16(c.sent[n].msg.Ns-nr) < 0 {
		n++
	}
	if n == 0 {
		return acts
	}
	c.sent = c.sent[n:]
	c.rto, c.retries = c.t.Retransmit, 0
	c.rtxDue = time.Time{}
	if len(c.sent) > 0 {
		c.rtxDue = now.Add(c.rto)
	}
	for len(c.queued) > 0 && len(c.sent) < int(c.peerWindow) {
		m := c.queued[0]
		c.queued = c.queued[1:]
		acts = c.send(acts, m, now)
	}
	switch {
	case c.phase == WaitICCNAck && int16(c.iccnNs-nr) < 0:
		c.phase = Established
		acts = append(acts, SessionUp{c.localTunnel, c.localSession, c.peerTunnel, c.peerSession})
	case c.phase == Stopping && int16(c.stopNs-nr) < 0:
		c.close()
		acts = append(acts, Closed{})
	}
	return acts
}

// Timeout runs the timers due at now: retransmission, HELLO.
func (c *Conn) Timeout(now time.Time) []Action {
	var acts []Action
	if !c.rtxDue.IsZero() && !now.Before(c.rtxDue) {
		if c.retries >= c.t.Retries {
			if c.phase != Stopping {
				acts = c.downed(acts, fmt.Errorf("%w: %d retransmissions of %s unacknowledged", ErrNoAnswer, c.retries, c.sent[0].msg.Type()))
			}
			c.close()
			return append(acts, Closed{})
		}
		c.retries++
		c.rto = min(2*c.rto, c.t.RetransmitCap)
		c.rtxDue = now.Add(c.rto)
		for i := range c.sent {
			m := c.sent[i].msg
			m.Nr = c.nr
			c.sent[i].msg = m
			acts = append(acts, Send{Msg: m})
		}
	}
	if !c.helloDue.IsZero() && !now.Before(c.helloDue) {
		c.helloDue = now.Add(c.t.Hello)
		if len(c.sent) == 0 && len(c.queued) == 0 {
			acts = c.send(acts, avp.NewMessage(avp.HELLO, c.peerTunnel, 0), now)
		}
	}
	return acts
}

// Receive takes m, a control message from the LNS (parsed by
// avp.ParseMessage, hidden AVPs still hidden).
func (c *Conn) Receive(m avp.Message, now time.Time) []Action {
	switch {
	case c.phase == Idle:
		return nil
	case m.TunnelID != c.localTunnel && !(m.TunnelID == 0 && c.peerTunnel == 0):
		return nil // not this tunnel's
	}
	var acts []Action
	if c.phase == Done {
		// Acknowledge a retransmitted StopCCN whose ZLB was lost.
		if m.Type() != avp.ZLB && int16(m.Ns-c.nr) < 0 && c.peerTunnel != 0 {
			return c.zlb(acts)
		}
		return nil
	}
	acts = c.ack(acts, m.Nr, now)
	if m.Type() == avp.ZLB || c.phase == Done {
		return acts
	}
	c.helloDue = time.Time{}
	if c.phase >= WaitICRP && c.phase < Stopping {
		c.helloDue = now.Add(c.t.Hello)
	}
	switch d := int16(m.Ns - c.nr); {
	case d < 0:
		return c.zlb(acts) // a duplicate: acknowledge, do not process
	case d > 0:
		if d < int16(c.cfg.ReceiveWindow) {
			c.ahead[m.Ns] = m
		}
		return acts
	}
	for {
		c.nr++
		sent := len(acts)
		acts = c.process(acts, m, now)
		if c.phase == Done {
			return acts
		}
		next, ok := c.ahead[c.nr]
		if !ok {
			if !sentAfter(acts, sent) {
				acts = c.zlb(acts)
			}
			break
		}
		delete(c.ahead, c.nr)
		m = next
	}
	for ns := range c.ahead {
		if int16(ns-c.nr) < 0 {
			delete(c.ahead, ns) // seen already
		}
	}
	return acts
}

// sentAfter reports whether acts[from:] sends a message (which carries
// the current Nr).
func sentAfter(acts []Action, from int) bool {
	for _, a := range acts[from:] {
		if _, ok := a.(Send); ok {
			return true
		}
	}
	return false
}

// process handles m, the next message in sequence.
func (c *Conn) process(acts []Action, m avp.Message, now time.Time) []Action {
	if err := m.Unhide(c.cfg.Secret); err != nil {
		if m.Type() == avp.StopCCN {
			// Read what can be read of it: it ends the tunnel anyway.
			return c.stopped(c.zlb(acts), m, now)
		}
		return c.fail(acts, fmt.Errorf("%w: wrong secret? cannot reveal a hidden AVP: %v", ErrAuth, err),
			avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorVendor, HasError: true, Message: "cannot reveal hidden AVP"}, now)
	}
	for _, a := range m.AVPs[1:] {
		if a.Mandatory && !a.Recognized() {
			return c.fail(acts, fmt.Errorf("%w: %s carries unknown mandatory %s", ErrProtocol, m.Type(), a),
				avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorUnknownMAVP, HasError: true}, now)
		}
	}
	switch t := m.Type(); t {
	case avp.SCCRP:
		if c.phase == WaitSCCRP {
			return c.sccrp(acts, m, now)
		}
	case avp.StopCCN:
		if tid, ok, err := m.Uint16(avp.AssignedTunnelID); c.peerTunnel == 0 && ok && err == nil {
			c.peerTunnel = tid // a refusal: address its acknowledgement
		}
		return c.stopped(c.zlb(acts), m, now)
	case avp.ICRP:
		if c.phase == WaitICRP && m.SessionID == c.localSession {
			return c.icrp(acts, m, now)
		}
	case avp.CDN:
		if m.SessionID == c.localSession && c.phase < Stopping {
			r, _, _ := m.Result()
			acts = c.downed(c.zlb(acts), fmt.Errorf("%w: %s", ErrSessionClosed, r.Describe(avp.CDN)))
			c.peerSession = 0 // the LNS has cleared it: no CDN back
			return c.stop(acts, avp.Result{Code: avp.StopClear, Message: "session closed"}, now)
		}
	default:
		if !t.Known() && m.AVPs[0].Mandatory {
			return c.fail(acts, fmt.Errorf("%w: unknown mandatory %s", ErrProtocol, t),
				avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorUnknownMAVP, HasError: true}, now)
		}
	}
	// HELLO, SLI, WEN, and what comes in the wrong phase: acknowledged
	// (by the caller of process), and otherwise ignored.
	return acts
}

// sccrp takes the LNS's reply to the SCCRQ.
func (c *Conn) sccrp(acts []Action, m avp.Message, now time.Time) []Action {
	tid, ok, err := m.Uint16(avp.AssignedTunnelID)
	if err != nil || !ok || tid == 0 {
		// The LNS cannot be told: it gave no tunnel ID to address.
		acts = c.downed(acts, fmt.Errorf("%w: SCCRP without an Assigned Tunnel ID", ErrProtocol))
		c.close()
		return append(acts, Closed{})
	}
	c.peerTunnel = tid
	c.peerWindow = 4
	if w, ok, err := m.Uint16(avp.ReceiveWindowSize); err == nil && ok && w > 0 {
		c.peerWindow = w
	}
	if v, ok, err := m.Uint16(avp.ProtocolVersion); err == nil && ok && v>>8 != 1 {
		return c.fail(acts, fmt.Errorf("%w: the LNS speaks L2TP protocol version %d.%d", ErrProtocol, v>>8, v&0xff),
			avp.Result{Code: avp.StopVersion}, now)
	}
	if h, ok, err := m.Bytes(avp.HostName, 0); err == nil && ok {
		c.peerHost = string(h)
	}
	if fc, ok, err := m.Uint32(avp.FramingCapabilities); err == nil && ok {
		c.sync = fc&1 != 0
	}
	notAuth := avp.Result{Code: avp.StopNotAuth, Error: avp.ErrorNone, HasError: true}
	if c.challenge != nil {
		resp, ok, err := m.Bytes(avp.ChallengeResponse, 16)
		want := avp.Respond(avp.SCCRP, c.cfg.Secret, c.challenge)
		switch {
		case err != nil || !ok:
			notAuth.Message = "no challenge response"
			return c.fail(acts, fmt.Errorf("%w: the LNS did not answer the tunnel challenge (no secret on its side?)", ErrAuth), notAuth, now)
		case len(resp) != len(want) || subtle.ConstantTimeCompare(resp, want[:]) != 1:
			notAuth.Message = "wrong challenge response"
			return c.fail(acts, fmt.Errorf("%w: wrong secret? the LNS's challenge response does not match", ErrAuth), notAuth, now)
		}
	}
	var avps []avp.AVP
	if chal, ok, err := m.Bytes(avp.Challenge, 1); ok {
		if err != nil || len(c.cfg.Secret) == 0 {
			notAuth.Message = "no tunnel secret"
			return c.fail(acts, fmt.Errorf("%w: the LNS asks for tunnel authentication and no secret is configured", ErrAuth), notAuth, now)
		}
		r := avp.Respond(avp.SCCCN, c.cfg.Secret, chal)
		avps = append(avps, avp.New(avp.ChallengeResponse, r[:]))
		c.answered = true
	}
	acts = c.send(acts, avp.NewMessage(avp.SCCCN, c.peerTunnel, 0, avps...), now)
	c.phase = WaitICRP
	c.helloDue = now.Add(c.t.Hello)
	acts = append(acts, TunnelUp{LocalTunnel: c.localTunnel, PeerTunnel: c.peerTunnel, PeerHost: c.peerHost})
	var serial [4]byte
	if _, err := io.ReadFull(c.cfg.Rand, serial[:]); err != nil {
		return c.fail(acts, fmt.Errorf("random call serial number: %w", err), avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorResources, HasError: true}, now)
	}
	return c.send(acts, avp.NewMessage(avp.ICRQ, c.peerTunnel, 0,
		avp.Uint16(avp.AssignedSessionID, c.localSession),
		avp.Uint32(avp.CallSerialNumber, binary.BigEndian.Uint32(serial[:])),
		avp.Uint32(avp.BearerType, 0)), now)
}

// icrp takes the LNS's reply to the ICRQ, and connects the call.
func (c *Conn) icrp(acts []Action, m avp.Message, now time.Time) []Action {
	sid, ok, err := m.Uint16(avp.AssignedSessionID)
	if err != nil || !ok || sid == 0 {
		return c.fail(acts, fmt.Errorf("%w: ICRP without an Assigned Session ID", ErrProtocol),
			avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorLength, HasError: true, Message: "ICRP without Assigned Session ID"}, now)
	}
	c.peerSession = sid
	framing := uint32(2) // asynchronous
	if c.sync {
		framing = 1
	}
	c.phase = WaitICCNAck
	c.iccnNs = c.ns + uint16(len(c.queued))
	return c.send(acts, avp.NewMessage(avp.ICCN, c.peerTunnel, c.peerSession,
		avp.Uint32(avp.TxConnectSpeed, c.cfg.ConnectSpeed),
		avp.Uint32(avp.FramingType, framing)), now)
}

// stopped takes a StopCCN from the LNS (already acknowledged in acts).
func (c *Conn) stopped(acts []Action, m avp.Message, now time.Time) []Action {
	r, ok, err := m.Result()
	why := "no result code"
	if ok && err == nil {
		why = r.Describe(avp.StopCCN)
	}
	var e error
	switch {
	case ok && err == nil && r.Code == avp.StopNotAuth,
		c.answered && c.phase == WaitICRP:
		e = fmt.Errorf("%w: wrong secret? the LNS said %s", ErrAuth, why)
	case c.phase == WaitSCCRP:
		e = fmt.Errorf("%w: %s", ErrRefused, why)
	case c.phase == Stopping:
		e = nil // both sides closing at once
	default:
		e = fmt.Errorf("%w: %s", ErrClosed, why)
	}
	if e != nil {
		acts = c.downed(acts, e)
	}
	c.close()
	return append(acts, Closed{})
}
