package rfc1661

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// lcpLayer is LCP's options (RFC 1661 section 6) as braid negotiates
// them on an L2TP link:
//
//   - Maximum-Receive-Unit: braid asks for Config.MRU (if set) and takes
//     the peer's Nak down to MinMRU; the peer's own under MinMRU is Nak'd
//     up to it, since IPv6 needs 1280 octets.
//   - Magic-Number: random, with RFC 1661 section 6.4's loop detection.
//   - Authentication-Protocol: the peer may ask braid for CHAP with MD5
//     or PAP; anything else is Nak'd toward CHAP with MD5.
//   - Async-Control-Character-Map: acknowledged and ignored, as L2TP
//     carries frames without RFC 1662's octet stuffing.
//   - Protocol- and Address-and-Control-Field-Compression: rejected, so
//     every frame from the peer has the full header the data plane reads
//     fastest (braid still reads compressed ones, RFC 1661 section 6.5).
//   - Anything else (Quality-Protocol, callback, multilink...): rejected.
type lcpLayer struct {
	c *Conn

	mru       int    // what braid asks for; 0: no option
	noMRU     bool   // the peer rejected the option
	magic     uint32 // braid's magic number; 0 once rejected
	noMagic   bool
	lastNak   uint32 // the magic number braid suggested in its last Nak
	loops     int    // signs of a looped-back link in a row
	peerMRU   int    // what braid may send
	peerMagic uint32
	authProto uint16 // what the peer asked braid to log in with
}

func (l *lcpLayer) request() []frame.Option {
	var opts []frame.Option
	if l.mru != 0 && !l.noMRU {
		opts = append(opts, frame.MRU(uint16(l.mru)))
	}
	if !l.noMagic {
		opts = append(opts, frame.Magic(l.magic))
	}
	return opts
}

func (l *lcpLayer) acked([]frame.Option) {}

func (l *lcpLayer) naked(opts []frame.Option) error {
	for _, o := range opts {
		switch o.Type {
		case frame.LCPMRU:
			if v, ok := o.Uint16(); ok && !l.noMRU && l.mru != 0 {
				l.mru = max(int(v), MinMRU)
			}
		case frame.LCPMagic:
			v, ok := o.Uint32()
			if !ok || l.noMagic {
				continue
			}
			// RFC 1661 section 6.4: the Nak of a looped-back link is
			// braid's own; either way, braid picks a new number.
			if v == l.lastNak && v != 0 {
				l.loops++
				if l.loops >= l.c.cfg.Timers.MaxFailure {
					l.c.fail(l.c.now, fmt.Errorf("%w: magic number Nak'd back %d times", ErrLooped, l.loops))
					return errors.New("looped")
				}
			}
			l.magic = l.c.newMagic()
		}
		// Options braid did not send are suggestions it may take; it
		// takes none (RFC 1661 section 5.3).
	}
	return nil
}

func (l *lcpLayer) rejected(opts []frame.Option) error {
	for _, o := range opts {
		switch o.Type {
		case frame.LCPMRU:
			l.noMRU = true
		case frame.LCPMagic:
			l.noMagic, l.magic = true, 0
		}
	}
	return nil
}

// check decides on the peer's request. RFC 1661 section 5: reject what
// braid does not know or will not do; else Nak what it wants otherwise;
// else Ack.
func (l *lcpLayer) check(opts []frame.Option) (uint8, []frame.Option, error) {
	var rej, nak []frame.Option
	peerMRU, peerMagic, auth := DefaultMRU, uint32(0), uint16(0)
	for _, o := range opts {
		switch o.Type {
		case frame.LCPMRU:
			v, ok := o.Uint16()
			switch {
			case !ok:
				rej = append(rej, o)
			case int(v) < MinMRU:
				nak = append(nak, frame.MRU(MinMRU))
			default:
				peerMRU = int(v)
			}
		case frame.LCPACCM:
			if _, ok := o.Uint32(); !ok {
				rej = append(rej, o)
			}
		case frame.LCPMagic:
			v, ok := o.Uint32()
			switch {
			case !ok:
				rej = append(rej, o)
			case v == 0:
				nak = append(nak, l.nakMagic())
			case v == l.magic && !l.noMagic:
				// Perhaps braid's own request, looped back.
				l.loops++
				if l.loops >= l.c.cfg.Timers.MaxFailure {
					l.c.fail(l.c.now, fmt.Errorf("%w: the peer's magic number is braid's %d times in a row", ErrLooped, l.loops))
					return 0, nil, errors.New("looped")
				}
				nak = append(nak, l.nakMagic())
			default:
				peerMagic = v
			}
		case frame.LCPAuthProtocol:
			p, data, ok := o.AuthProtocol()
			switch {
			case ok && p == frame.ProtoCHAP && len(data) == 1 && data[0] == frame.CHAPMD5Algorithm,
				ok && p == frame.ProtoPAP && len(data) == 0:
				auth = p
			default:
				// MS-CHAP, EAP, CHAP with another algorithm: braid
				// speaks CHAP with MD5 (RFC 1994) and PAP only.
				nak = append(nak, frame.AuthCHAPMD5())
			}
		default:
			rej = append(rej, o)
		}
	}
	switch {
	case len(rej) > 0:
		return frame.ConfigureReject, rej, nil
	case len(nak) > 0:
		return frame.ConfigureNak, nak, nil
	}
	l.peerMRU, l.peerMagic, l.authProto = peerMRU, peerMagic, auth
	l.loops = 0
	return frame.ConfigureAck, nil, nil
}

// nakMagic is a Nak suggesting another magic number to the peer.
func (l *lcpLayer) nakMagic() frame.Option {
	l.lastNak = l.c.newMagic()
	for l.lastNak == l.magic {
		l.lastNak = l.c.newMagic()
	}
	return frame.Magic(l.lastNak)
}

func (l *lcpLayer) up(now time.Time)       { l.c.lcpUp(now) }
func (l *lcpLayer) down(now time.Time)     { l.c.lcpDown(now) }
func (l *lcpLayer) started(time.Time)      {}
func (l *lcpLayer) finished(now time.Time) { l.c.lcpFinished(now) }

// fatalReject: a Code-Reject of an Echo or a Discard only means the peer
// has none; of anything else, LCP cannot work.
func (l *lcpLayer) fatalReject(code uint8) bool {
	switch code {
	case frame.EchoRequest, frame.EchoReply, frame.DiscardRequest:
		if code == frame.EchoRequest {
			l.c.echo.disable(l.c)
		}
		return false
	}
	return true
}

// other handles LCP's codes beyond Code-Reject: Protocol-Reject, Echo-
// Request, Echo-Reply, Discard-Request (RXR). They count only when LCP
// is Opened (RFC 1661 sections 5.7, 5.8).
func (l *lcpLayer) other(p frame.Packet, now time.Time) bool {
	switch p.Code {
	case frame.ProtocolReject:
		if l.c.lcp.state == Opened {
			l.c.protocolRejected(p, now)
		}
	case frame.EchoRequest:
		if l.c.lcp.state != Opened {
			return true
		}
		if m, ok := frame.EchoMagic(p.Data); ok && m == l.magic && m != 0 {
			l.c.logf(slog.LevelWarn, "PPP Echo-Request with braid's own magic number: link looped back?")
			return true
		}
		l.c.lcp.note("ser")
		l.c.lcp.send(frame.Packet{Code: frame.EchoReply, ID: p.ID, Data: frame.Echo(l.magic, tail(p.Data))})
	case frame.EchoReply:
		if l.c.lcp.state == Opened {
			l.c.echoReply(p, now)
		}
	case frame.DiscardRequest:
	default:
		return false
	}
	return true
}

// tail is an Echo's Data after its magic number.
func tail(data []byte) []byte {
	if len(data) < 4 {
		return nil
	}
	return data[4:]
}

// protocolRejected handles the peer's Protocol-Reject: of IPV6CP (or
// IPv6), the link is no use; of LCP, it cannot work; of the rest, RXJ+.
func (c *Conn) protocolRejected(p frame.Packet, now time.Time) {
	proto, ok := frame.RejectedProtocol(p.Data)
	if !ok {
		return
	}
	c.logf(slog.LevelDebug, "PPP Protocol-Reject from the peer", "protocol", frame.ProtocolName(proto))
	switch proto {
	case frame.ProtoIPV6CP, frame.ProtoIPv6:
		c.ipv6cp.rxj(false, now, ErrNoIPv6)
	case frame.ProtoLCP:
		c.lcp.rxj(false, now, errors.New("the PPP peer rejected LCP"))
	default:
		c.lcp.rxj(true, now, nil)
	}
}

// echo is LCP's keepalive: an Echo-Request every Keepalive while LCP is
// Opened; KeepaliveFailures unanswered in a row fail the link.
type echo struct {
	nextID      uint8
	due         time.Time
	disabled    bool // the peer Code-Rejected Echo-Request
	outstanding int
	sent        map[uint8]time.Time
	rtt         time.Duration
}

func (e *echo) start(c *Conn, now time.Time) {
	if c.cfg.Keepalive <= 0 || e.disabled {
		return
	}
	e.outstanding, e.sent = 0, map[uint8]time.Time{}
	e.due = now.Add(c.cfg.Keepalive)
}

func (e *echo) stop() { e.due = time.Time{} }

func (e *echo) disable(c *Conn) {
	if !e.disabled {
		c.logf(slog.LevelWarn, "the PPP peer rejects LCP Echo-Request: no keepalive on this link")
	}
	e.disabled = true
	e.stop()
}

// echoTimeout sends the next echo, or fails the link when too many went
// unanswered.
func (c *Conn) echoTimeout(now time.Time) {
	e := &c.echo
	if e.due.IsZero() || now.Before(e.due) || c.lcp.state != Opened {
		return
	}
	if e.outstanding >= c.cfg.KeepaliveFailures {
		e.stop()
		c.fail(now, fmt.Errorf("%w: %d in a row, %s apart", ErrKeepalive, e.outstanding, c.cfg.Keepalive))
		return
	}
	id := e.nextID
	e.nextID++
	e.outstanding++
	if len(e.sent) > 64 {
		clear(e.sent)
	}
	e.sent[id] = now
	e.due = now.Add(c.cfg.Keepalive)
	c.lcp.send(frame.Packet{Code: frame.EchoRequest, ID: id, Data: frame.Echo(c.lcpOpts.magic, nil)})
}

// echoReply takes an answer to one of braid's echoes.
func (c *Conn) echoReply(p frame.Packet, now time.Time) {
	e := &c.echo
	m, ok := frame.EchoMagic(p.Data)
	if !ok || (m == c.lcpOpts.magic && m != 0) {
		return // malformed, or braid's own request looped back
	}
	at, ok := e.sent[p.ID]
	if !ok {
		return
	}
	e.rtt = now.Sub(at)
	e.outstanding = 0
	clear(e.sent)
}
