// Package control is the LNS side of one L2TPv2 control connection (RFC
// 2661) for braid's test LNS: it answers a LAC's SCCRQ with an SCCRP,
// authenticates the tunnel both ways (section 5.1.1: it answers the
// LAC's Challenge and challenges the LAC, whose SCCCN must answer), takes
// incoming calls (ICRQ, ICRP, ICCN; one session at a time), acknowledges
// HELLOs, and ends on a StopCCN either way. Reliable delivery (section
// 5.8) is the simple kind: messages are processed in order only (one
// ahead of the expected Ns is dropped, and the LAC sends it again), every
// message needing no answer is acknowledged by a ZLB, unacknowledged ones
// are sent again after 1, 2, 4, 8, 8 s and the connection is given up
// after that.
//
// Like sessions/l2tp/control, which is braid's LAC side, it has no socket
// and no clock: a Conn is driven by Receive and Timeout, each given the
// current time, and returns Actions. It reads and writes messages with
// braid's own codec (sessions/l2tp/avp): the test LNS is for the demo
// and for fast tests; the real LNS (xl2tpd) remains the conformance test
// of braid's LAC.
package control

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/braid-router/braid/sessions/l2tp/avp"
)

// Errors a connection ends with (wrapped in Closed.Err).
var (
	// ErrAuth: the LAC's Challenge Response was missing or wrong.
	ErrAuth = errors.New("tunnel authentication failed")
	// ErrNoAnswer: the LAC stopped acknowledging.
	ErrNoAnswer = errors.New("no answer from the LAC")
	// ErrProtocol: the LAC sent what RFC 2661 does not allow.
	ErrProtocol = errors.New("L2TP protocol error")
	// ErrStopped: the LAC ended the tunnel (StopCCN).
	ErrStopped = errors.New("tunnel closed by the LAC")
)

// Config is what a Conn needs.
type Config struct {
	// Hostname is the LNS's Host Name AVP.
	Hostname string
	// Secret is the tunnel secret. With one, the LNS answers the LAC's
	// Challenge and challenges the LAC; without, a LAC that challenges
	// gets no answer (and gives up).
	Secret []byte
	// Rand is the source of IDs and challenges; nil is not allowed.
	Rand io.Reader
	// Retransmit is the first retransmission timeout (1 s when zero),
	// doubled up to 8 s; Retries how many retransmissions without
	// progress end the connection (5 when zero). Hello is how long the
	// LNS waits without a message before it sends a HELLO (60 s).
	Retransmit time.Duration
	Retries    int
	Hello      time.Duration
}

// Action is something a Conn's caller carries out.
type Action interface{ action() }

// Send sends Msg to the LAC.
type Send struct{ Msg avp.Message }

// TunnelUp: the LAC's SCCCN authenticated the tunnel.
type TunnelUp struct {
	LocalTunnel, PeerTunnel uint16
	PeerHost                string
}

// SessionUp: the LAC's ICCN connected a call; PPP starts.
type SessionUp struct{ LocalSession, PeerSession uint16 }

// SessionDown: the session ended (a CDN either way, or the tunnel with
// it).
type SessionDown struct {
	LocalSession uint16
	Err          error
}

// Closed: the connection is over; Err says why (nil when the LNS closed
// it and the LAC acknowledged).
type Closed struct{ Err error }

func (Send) action()        {}
func (TunnelUp) action()    {}
func (SessionUp) action()   {}
func (SessionDown) action() {}
func (Closed) action()      {}

// Phase is where a Conn is.
type Phase int

// The phases of a Conn.
const (
	// WaitSCCRQ: created, nothing received.
	WaitSCCRQ Phase = iota
	// WaitSCCCN: the SCCRP is sent.
	WaitSCCCN
	// Established: the tunnel is up (sessions come and go in it).
	Established
	// Stopping: the StopCCN is sent.
	Stopping
	// Done: over.
	Done
)

// Conn is the LNS side of one control connection.
type Conn struct {
	cfg Config

	phase                   Phase
	localTunnel, peerTunnel uint16
	peerHost                string
	challenge               []byte // the one sent to the LAC
	peerWindow              int

	// The session (one at a time): 0 when none.
	localSession, peerSession uint16
	sessionUp                 bool

	ns, nr   uint16
	sent     []avp.Message
	queued   []avp.Message
	rto      time.Duration
	retries  int
	rtxDue   time.Time
	helloDue time.Time
	stopNs   uint16
	err      error
}

// New returns a connection waiting for the LAC's SCCRQ.
func New(cfg Config) *Conn {
	if cfg.Retransmit <= 0 {
		cfg.Retransmit = time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.Hello <= 0 {
		cfg.Hello = 60 * time.Second
	}
	return &Conn{cfg: cfg, peerWindow: 4}
}

// Phase returns where c is.
func (c *Conn) Phase() Phase { return c.phase }

// Tunnels returns the LNS's and the LAC's tunnel IDs (0 until known).
func (c *Conn) Tunnels() (local, peer uint16) { return c.localTunnel, c.peerTunnel }

// PeerTunnel is the LAC's tunnel ID, which data messages to it carry.
func (c *Conn) PeerTunnel() uint16 { return c.peerTunnel }

// Session returns the LNS's and the LAC's IDs of the current session, and
// whether it is connected (ICCN received).
func (c *Conn) Session() (local, peer uint16, up bool) {
	return c.localSession, c.peerSession, c.sessionUp
}

// Deadline is when Timeout is due next; zero when no timer runs.
func (c *Conn) Deadline() time.Time {
	switch {
	case c.rtxDue.IsZero():
		return c.helloDue
	case c.helloDue.IsZero() || c.rtxDue.Before(c.helloDue):
		return c.rtxDue
	}
	return c.helloDue
}

func (c *Conn) random16() (uint16, error) {
	var b [2]byte
	for {
		if _, err := io.ReadFull(c.cfg.Rand, b[:]); err != nil {
			return 0, fmt.Errorf("random ID: %w", err)
		}
		if v := uint16(b[0])<<8 | uint16(b[1]); v != 0 {
			return v, nil
		}
	}
}

// send sends m (to the LAC's tunnel), or queues it behind a full window.
func (c *Conn) send(acts []Action, m avp.Message, now time.Time) []Action {
	if len(c.sent) >= c.peerWindow {
		c.queued = append(c.queued, m)
		return acts
	}
	m.Ns, m.Nr = c.ns, c.nr
	c.ns++
	if len(c.sent) == 0 {
		c.rto, c.retries = c.cfg.Retransmit, 0
		c.rtxDue = now.Add(c.rto)
	}
	c.sent = append(c.sent, m)
	return append(acts, Send{Msg: m})
}

func (c *Conn) zlb(acts []Action) []Action {
	return append(acts, Send{Msg: avp.Message{TunnelID: c.peerTunnel, Ns: c.ns, Nr: c.nr}})
}

// ack takes a received Nr.
func (c *Conn) ack(acts []Action, nr uint16, now time.Time) []Action {
	if int16(c.ns-nr) < 0 {
		return acts
	}
	n := 0
	for n < len(c.sent) && int16(c.sent[n].Ns-nr) < 0 {
		n++
	}
	if n == 0 {
		return acts
	}
	c.sent = c.sent[n:]
	c.rto, c.retries, c.rtxDue = c.cfg.Retransmit, 0, time.Time{}
	if len(c.sent) > 0 {
		c.rtxDue = now.Add(c.rto)
	}
	for len(c.queued) > 0 && len(c.sent) < c.peerWindow {
		m := c.queued[0]
		c.queued = c.queued[1:]
		acts = c.send(acts, m, now)
	}
	if c.phase == Stopping && int16(c.stopNs-nr) < 0 {
		acts = c.close(acts, c.err)
	}
	return acts
}

// close ends the connection: the session, if any, goes down with it.
func (c *Conn) close(acts []Action, err error) []Action {
	if c.phase == Done {
		return acts
	}
	acts = c.sessionEnded(acts, err)
	c.phase = Done
	c.sent, c.queued = nil, nil
	c.rtxDue, c.helloDue = time.Time{}, time.Time{}
	return append(acts, Closed{Err: err})
}

func (c *Conn) sessionEnded(acts []Action, err error) []Action {
	if c.localSession == 0 {
		return acts
	}
	acts = append(acts, SessionDown{LocalSession: c.localSession, Err: err})
	c.localSession, c.peerSession, c.sessionUp = 0, 0, false
	return acts
}

// Stop ends the connection from the LNS's side: a CDN for the session, if
// any, then a StopCCN with result; the connection is Done once the LAC
// acknowledges it, or gives up.
func (c *Conn) Stop(result avp.Result, now time.Time) []Action {
	return c.stop(nil, result, nil, now)
}

// StopSession ends the current session alone with a CDN (result code
// CDNAdmin): a newer session replaces it.
func (c *Conn) StopSession(now time.Time) []Action {
	if c.localSession == 0 || c.phase != Established {
		return nil
	}
	peer := c.peerSession
	acts := c.sessionEnded(nil, errors.New("replaced by a newer session"))
	return c.send(acts, avp.NewMessage(avp.CDN, c.peerTunnel, peer,
		avp.NewResult(avp.Result{Code: avp.CDNAdmin, HasError: true, Message: "replaced by a newer session"}),
		avp.Uint16(avp.AssignedSessionID, 0)), now)
}

func (c *Conn) stop(acts []Action, result avp.Result, err error, now time.Time) []Action {
	switch c.phase {
	case WaitSCCRQ:
		return c.close(acts, err)
	case Stopping, Done:
		return acts
	}
	if c.localSession != 0 {
		peer := c.peerSession
		why := err
		if why == nil {
			why = fmt.Errorf("the LNS closes the tunnel: %s", result.Describe(avp.StopCCN))
		}
		acts = c.sessionEnded(acts, why)
		acts = c.send(acts, avp.NewMessage(avp.CDN, c.peerTunnel, peer,
			avp.NewResult(avp.Result{Code: avp.CDNAdmin, HasError: true}), avp.Uint16(avp.AssignedSessionID, 0)), now)
	}
	c.err = err
	c.phase = Stopping
	c.stopNs = c.ns + uint16(len(c.queued))
	c.helloDue = time.Time{}
	return c.send(acts, avp.NewMessage(avp.StopCCN, c.peerTunnel, 0,
		avp.Uint16(avp.AssignedTunnelID, c.localTunnel), avp.NewResult(result)), now)
}

// Timeout runs the timers due at now.
func (c *Conn) Timeout(now time.Time) []Action {
	var acts []Action
	if !c.rtxDue.IsZero() && !now.Before(c.rtxDue) {
		if c.retries >= c.cfg.Retries {
			return c.close(acts, fmt.Errorf("%w: %d retransmissions of %s unacknowledged", ErrNoAnswer, c.retries, c.sent[0].Type()))
		}
		c.retries++
		c.rto = min(2*c.rto, 8*time.Second)
		c.rtxDue = now.Add(c.rto)
		for i := range c.sent {
			c.sent[i].Nr = c.nr
			acts = append(acts, Send{Msg: c.sent[i]})
		}
	}
	if !c.helloDue.IsZero() && !now.Before(c.helloDue) {
		c.helloDue = now.Add(c.cfg.Hello)
		if len(c.sent) == 0 {
			acts = c.send(acts, avp.NewMessage(avp.HELLO, c.peerTunnel, 0), now)
		}
	}
	return acts
}

// Receive takes m, a control message from the LAC addressed to this
// connection (its SCCRQ carries tunnel ID 0).
func (c *Conn) Receive(m avp.Message, now time.Time) []Action {
	if c.phase == Done {
		return nil
	}
	if c.phase == WaitSCCRQ && m.Type() != avp.SCCRQ {
		return nil
	}
	acts := c.ack(nil, m.Nr, now)
	if m.Type() == avp.ZLB || c.phase == Done {
		return acts
	}
	if c.phase == Established {
		c.helloDue = now.Add(c.cfg.Hello)
	}
	switch d := int16(m.Ns - c.nr); {
	case d < 0:
		return c.zlb(acts) // a retransmission: acknowledge again
	case d > 0:
		return acts // ahead: the LAC sends it again
	}
	c.nr++
	n := len(acts)
	acts = c.process(acts, m, now)
	if c.phase != Done && !sentAfter(acts, n) {
		acts = c.zlb(acts)
	}
	return acts
}

func sentAfter(acts []Action, from int) bool {
	for _, a := range acts[from:] {
		if _, ok := a.(Send); ok {
			return true
		}
	}
	return false
}

func (c *Conn) process(acts []Action, m avp.Message, now time.Time) []Action {
	if err := m.Unhide(c.cfg.Secret); err != nil {
		return c.stop(acts, avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorVendor, HasError: true, Message: "cannot reveal hidden AVP"},
			fmt.Errorf("%w: %v", ErrProtocol, err), now)
	}
	for _, a := range m.AVPs[1:] {
		if a.Mandatory && !a.Recognized() {
			return c.stop(acts, avp.Result{Code: avp.StopGeneralError, Error: avp.ErrorUnknownMAVP, HasError: true},
				fmt.Errorf("%w: %s carries unknown mandatory %s", ErrProtocol, m.Type(), a), now)
		}
	}
	switch m.Type() {
	case avp.SCCRQ:
		if c.phase == WaitSCCRQ {
			return c.sccrq(acts, m, now)
		}
	case avp.SCCCN:
		if c.phase == WaitSCCCN {
			return c.scccn(acts, m, now)
		}
	case avp.StopCCN:
		r, _, _ := m.Result()
		acts = c.zlb(acts)
		return c.close(acts, fmt.Errorf("%w: %s", ErrStopped, r.Describe(avp.StopCCN)))
	case avp.ICRQ:
		if c.phase == Established {
			return c.icrq(acts, m, now)
		}
	case avp.ICCN:
		if c.phase == Established && m.SessionID == c.localSession && c.localSession != 0 && !c.sessionUp {
			c.sessionUp = true
			acts = c.zlb(acts)
			return append(acts, SessionUp{LocalSession: c.localSession, PeerSession: c.peerSession})
		}
	case avp.CDN:
		if m.SessionID == c.localSession && c.localSession != 0 {
			r, _, _ := m.Result()
			acts = c.zlb(acts)
			return c.sessionEnded(acts, fmt.Errorf("call cleared by the LAC: %s", r.Describe(avp.CDN)))
		}
	}
	return acts // HELLO, and what comes out of turn: acknowledged
}

func (c *Conn) sccrq(acts []Action, m avp.Message, now time.Time) []Action {
	tid, ok, err := m.Uint16(avp.AssignedTunnelID)
	if err != nil || !ok || tid == 0 {
		c.phase = Done
		return append(acts, Closed{Err: fmt.Errorf("%w: SCCRQ without an Assigned Tunnel ID", ErrProtocol)})
	}
	c.peerTunnel = tid
	if w, ok, err := m.Uint16(avp.ReceiveWindowSize); err == nil && ok && w > 0 {
		c.peerWindow = int(w)
	}
	if h, ok, err := m.Bytes(avp.HostName, 0); err == nil && ok {
		c.peerHost = string(h)
	}
	if c.localTunnel, err = c.random16(); err != nil {
		c.phase = Done
		return append(acts, Closed{Err: err})
	}
	if v, ok, err := m.Uint16(avp.ProtocolVersion); err != nil || !ok || v != 0x0100 {
		c.phase = WaitSCCCN
		return c.stop(acts, avp.Result{Code: avp.StopVersion, HasError: true},
			fmt.Errorf("%w: protocol version %#04x, want 1.0", ErrProtocol, v), now)
	}
	avps := []avp.AVP{
		avp.Uint16(avp.ProtocolVersion, 0x0100),
		avp.Uint32(avp.FramingCapabilities, 3),
		avp.String(avp.HostName, c.cfg.Hostname),
		avp.Uint16(avp.AssignedTunnelID, c.localTunnel),
		avp.Uint16(avp.ReceiveWindowSize, 4),
	}
	if chal, ok, err := m.Bytes(avp.Challenge, 1); ok && err == nil && len(c.cfg.Secret) > 0 {
		r := avp.Respond(avp.SCCRP, c.cfg.Secret, chal)
		avps = append(avps, avp.New(avp.ChallengeResponse, r[:]))
	}
	if len(c.cfg.Secret) > 0 {
		c.challenge = make([]byte, 16)
		if _, err := io.ReadFull(c.cfg.Rand, c.challenge); err != nil {
			c.phase = Done
			return append(acts, Closed{Err: fmt.Errorf("random challenge: %w", err)})
		}
		avps = append(avps, avp.New(avp.Challenge, c.challenge))
	}
	c.phase = WaitSCCCN
	return c.send(acts, avp.NewMessage(avp.SCCRP, c.peerTunnel, 0, avps...), now)
}

func (c *Conn) scccn(acts []Action, m avp.Message, now time.Time) []Action {
	if c.challenge != nil {
		resp, ok, err := m.Bytes(avp.ChallengeResponse, 16)
		want := avp.Respond(avp.SCCCN, c.cfg.Secret, c.challenge)
		if err != nil || !ok || len(resp) != len(want) || subtle.ConstantTimeCompare(resp, want[:]) != 1 {
			return c.stop(acts, avp.Result{Code: avp.StopNotAuth, HasError: true, Message: "wrong challenge response"},
				fmt.Errorf("%w: the LAC's challenge response is missing or wrong", ErrAuth), now)
		}
	}
	c.phase = Established
	c.helloDue = now.Add(c.cfg.Hello)
	return append(c.zlb(acts), TunnelUp{LocalTunnel: c.localTunnel, PeerTunnel: c.peerTunnel, PeerHost: c.peerHost})
}

func (c *Conn) icrq(acts []Action, m avp.Message, now time.Time) []Action {
	sid, ok, err := m.Uint16(avp.AssignedSessionID)
	if err != nil || !ok || sid == 0 {
		return c.zlb(acts) // no session to address a CDN to
	}
	if c.localSession != 0 {
		// One session per tunnel: refuse the second.
		return c.send(acts, avp.NewMessage(avp.CDN, c.peerTunnel, sid,
			avp.NewResult(avp.Result{Code: avp.CDNNoFacilitiesTemp, HasError: true, Message: "one session per tunnel"}),
			avp.Uint16(avp.AssignedSessionID, 0)), now)
	}
	local, err := c.random16()
	if err != nil {
		return c.zlb(acts)
	}
	c.localSession, c.peerSession, c.sessionUp = local, sid, false
	return c.send(acts, avp.NewMessage(avp.ICRP, c.peerTunnel, sid, avp.Uint16(avp.AssignedSessionID, local)), now)
}
