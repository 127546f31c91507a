// Package ppp is braid's PPP client over an L2TPv2 session (the 6PE
// tunnel): it runs the pure machine of package rfc1661 (LCP, CHAP-MD5
// or PAP, IPV6CP) on real time, sending the frames it makes through the
// L2TP session and reporting when IPv6 is up. The frames are those of
// package frame; IPv6 data frames (protocol 0x0057) are the data plane's
// and never pass here.
package ppp

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	pppframe "github.com/braid-router/braid/sessions/ppp/frame"
	"github.com/braid-router/braid/sessions/ppp/rfc1661"
)

// Errors a link ends with; test them with errors.Is to word status.
var (
	ErrAuthRefused    = rfc1661.ErrAuthRefused    // the login was refused: wrong username or password
	ErrAuthTimeout    = rfc1661.ErrAuthTimeout    // the login did not complete in time
	ErrKeepalive      = rfc1661.ErrKeepalive      // LCP echoes went unanswered
	ErrPeerTerminated = rfc1661.ErrPeerTerminated // the LNS terminated the link
	ErrNotConverged   = rfc1661.ErrNotConverged   // no answer, or a negotiation that did not end
	ErrLooped         = rfc1661.ErrLooped         // the link is looped back
	ErrNoIPv6         = rfc1661.ErrNoIPv6         // the LNS rejected IPV6CP
	ErrRenegotiated   = rfc1661.ErrRenegotiated   // the LNS renegotiated to other identifiers or MRU
)

// closeWait bounds the wait for the Terminate-Ack when Run's context
// ends.
const closeWait = 3 * time.Second

// Config is what the link negotiates with.
type Config struct {
	// Username and Password are the PPP login (CHAP-MD5 or PAP,
	// whichever the LNS asks for). The password is never logged.
	Username string
	Password []byte
	// Keepalive is the LCP echo interval; zero sends no echoes.
	Keepalive time.Duration
	// KeepaliveFailures is how many echoes in a row may go unanswered
	// before the link is declared dead (4 when zero).
	KeepaliveFailures int
	// MRU is the Maximum-Receive-Unit braid asks for; zero asks none
	// (1500).
	MRU int
	// IfID is braid's IPv6 interface identifier; zero picks a random one.
	IfID [8]byte
	// Restart is the restart timer (RFC 1661's 3 s when zero).
	Restart time.Duration
}

// LogValue keeps the password out of logs.
func (c Config) LogValue() slog.Value { return c.machine().LogValue() }

func (c Config) machine() rfc1661.Config {
	return rfc1661.Config{Username: c.Username, Password: c.Password, MRU: c.MRU, InterfaceID: c.IfID,
		Keepalive: c.Keepalive, KeepaliveFailures: c.KeepaliveFailures, Timers: rfc1661.Timers{Restart: c.Restart}}
}

// Link is one PPP link: New, then Run, with every received non-IPv6
// frame given to Input.
type Link struct {
	send func([]byte) error
	log  *slog.Logger

	mu      sync.Mutex
	conn    *rfc1661.Conn
	outbox  [][]byte
	early   [][]byte // frames that came before Run, for it to take
	started bool
	upAt    time.Time
	up      negotiated

	sendMu sync.Mutex    // held while the outbox is being sent
	wake   chan struct{} // the deadline may have moved
	upCh   chan struct{} // closed at the first Up
	doneCh chan struct{} // closed when the machine finished
}

// negotiated is what IPV6CP negotiated.
type negotiated struct {
	Local, Peer [8]byte
	MRU         int
}

// New returns a link that will log in with cfg, sending each frame
// (Address and Control fields, Protocol, Information, as package frame
// writes them for L2TP) with send, in order, never under the link's
// lock: send may call Input. log may be nil.
func New(cfg Config, send func(frame []byte) error, log *slog.Logger) *Link {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var seed [8]byte
	_, _ = crand.Read(seed[:])
	return &Link{
		send:   send,
		log:    log,
		conn:   rfc1661.New(cfg.machine(), binary.LittleEndian.Uint64(seed[:])),
		wake:   make(chan struct{}, 1),
		upCh:   make(chan struct{}),
		doneCh: make(chan struct{}),
	}
}

// maxEarly bounds the frames kept from before Run.
const maxEarly = 16

// Input takes one frame from the peer: any protocol but IPv6 data. It
// does not keep frame. Frames that come before Run starts are kept (a
// few) for it, so the LNS's first Configure-Request is not lost.
func (l *Link) Input(frame []byte) {
	l.debugFrame("PPP received", frame)
	l.mu.Lock()
	if !l.started {
		if len(l.early) < maxEarly {
			l.early = append(l.early, bytes.Clone(frame))
		}
		l.mu.Unlock()
		return
	}
	acts := l.conn.Input(frame, time.Now())
	l.apply(acts)
	l.mu.Unlock()
	l.flush()
	l.poke()
}

// Up is closed when IPV6CP is Opened: IPv6 may flow.
func (l *Link) Up() <-chan struct{} { return l.upCh }

// Negotiated is the IPv6 interface identifiers (braid's, the LNS's) and
// the MRU: the largest packet both sides take. Valid once Up is closed.
func (l *Link) Negotiated() (local, peer [8]byte, mru int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up.Local, l.up.Peer, l.up.MRU
}

// Info is the link's state, for status.
type Info struct {
	// Phase is RFC 1661's phase: dead, establish, authenticate, network
	// or terminate.
	Phase string
	// LCP and IPV6CP are the states of their automatons ("Opened"...).
	LCP, IPV6CP string
	// Auth is the login protocol the LNS asked for: "CHAP-MD5", "PAP"
	// or "".
	Auth string
	// Local and Peer are the interface identifiers; MRU the largest
	// packet both sides take.
	Local, Peer [8]byte
	MRU         int
	// UpSince is when IPV6CP opened; zero while it is not.
	UpSince time.Time
	// EchoRTT is the round trip of the last answered LCP echo;
	// EchoesUnanswered the echoes sent since.
	EchoRTT          time.Duration
	EchoesUnanswered int
	// Err is why the link ended; nil while it runs.
	Err error
}

// Info reports the link's state.
func (l *Link) Info() Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.conn.Status()
	return Info{Phase: s.Phase.String(), LCP: s.LCP.String(), IPV6CP: s.IPV6CP.String(), Auth: s.Auth,
		Local: s.Local, Peer: s.Peer, MRU: s.MRU, UpSince: l.upAt, EchoRTT: s.EchoRTT,
		EchoesUnanswered: s.EchoesUnanswered, Err: s.Err}
}

// Run opens the link and runs its timers until ctx ends, when it
// terminates the link (an LCP Terminate-Request, and a brief wait for its
// Ack) and returns ctx's error, or until the link fails, when it returns
// why: ErrAuthRefused, ErrKeepalive, ErrPeerTerminated, ErrNotConverged...
// Run may be called once.
func (l *Link) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.started {
		l.mu.Unlock()
		return errors.New("ppp: Run called twice")
	}
	l.started = true
	l.apply(l.conn.Open(time.Now()))
	for _, f := range l.early {
		l.apply(l.conn.Input(f, time.Now()))
	}
	l.early = nil
	l.mu.Unlock()
	l.flush()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var closing <-chan time.Time
	ctxDone := ctx.Done()
	for {
		l.mu.Lock()
		deadline, done := l.conn.Deadline(), l.conn.Done()
		l.mu.Unlock()
		if done {
			break
		}
		wait := time.Hour
		if !deadline.IsZero() {
			wait = max(time.Until(deadline), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctxDone:
			ctxDone = nil
			closing = time.After(closeWait)
			l.mu.Lock()
			l.apply(l.conn.Close(time.Now()))
			l.mu.Unlock()
			l.flush()
		case <-closing:
			l.mu.Lock()
			l.finish()
			l.mu.Unlock()
			return ctx.Err()
		case <-timer.C:
			l.mu.Lock()
			l.apply(l.conn.Timeout(time.Now()))
			l.mu.Unlock()
			l.flush()
		case <-l.wake:
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn.Err()
}

// finish marks the link done without the machine (the close wait ran
// out).
func (l *Link) finish() {
	select {
	case <-l.doneCh:
	default:
		close(l.doneCh)
	}
}

// apply carries out the machine's actions; l.mu is held. Frames are
// queued for flush, which sends them outside the lock.
func (l *Link) apply(acts []rfc1661.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case rfc1661.Send:
			l.outbox = append(l.outbox, a.Frame)
		case rfc1661.Up:
			l.up = negotiated(a)
			l.upAt = time.Now()
			select {
			case <-l.upCh:
			default:
				close(l.upCh)
			}
			l.log.Info("PPP up: IPV6CP opened", "local", ifid(a.Local), "peer", ifid(a.Peer), "mru", a.MRU)
		case rfc1661.Down:
			l.upAt = time.Time{}
			l.log.Warn("PPP IPV6CP down", "reason", a.Why)
		case rfc1661.Finished:
			l.upAt = time.Time{}
			l.finish()
			l.log.Info("PPP link finished", "reason", a.Err)
		case rfc1661.Log:
			l.log.Log(context.Background(), a.Level, a.Msg, a.Args...)
		}
	}
}

// flush sends the queued frames, in order, outside l.mu. Whoever holds
// sendMu sends what others queue meanwhile, so send may call Input.
func (l *Link) flush() {
	for {
		if !l.sendMu.TryLock() {
			return
		}
		for {
			l.mu.Lock()
			out := l.outbox
			l.outbox = nil
			l.mu.Unlock()
			if len(out) == 0 {
				break
			}
			for _, f := range out {
				l.debugFrame("PPP sent", f)
				if err := l.send(f); err != nil {
					l.log.Debug("PPP frame not sent", "err", err)
				}
			}
		}
		l.sendMu.Unlock()
		l.mu.Lock()
		empty := len(l.outbox) == 0
		l.mu.Unlock()
		if empty {
			return
		}
	}
}

// debugFrame logs a frame at debug level, described as pppd would
// (frame.Describe never shows a password).
func (l *Link) debugFrame(msg string, f []byte) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(msg, "frame", pppframe.Describe(f))
	}
}

// poke tells Run the deadline may have moved or the machine finished.
func (l *Link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// LinkLocal is the IPv6 link-local address of interface identifier id
// (RFC 5072 section 5): fe80::/64 and id.
func LinkLocal(id [8]byte) netip.Addr {
	b := [16]byte{0xfe, 0x80}
	copy(b[8:], id[:])
	return netip.AddrFrom16(b)
}

func ifid(id [8]byte) string { return LinkLocal(id).String() }
