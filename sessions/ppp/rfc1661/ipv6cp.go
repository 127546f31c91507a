package rfc1661

import (
	"log/slog"
	"time"

	"github.com/braid-router/braid/sessions/ppp/frame"
)

// ipv6cpLayer is IPV6CP's options (RFC 5072 section 4): the
// Interface-Identifier, whose rules (section 4.1) are:
//
//   - braid asks for its own identifier, and takes the one the peer
//     suggests in a Nak (unless it is zero or the peer's own);
//   - the peer's identifier is acknowledged when it differs from braid's
//     and is not zero; a zero one, or one equal to braid's (a collision),
//     is Nak'd with a random identifier for the peer to use;
//   - IPv6-Compression-Protocol and unknown options are rejected.
type ipv6cpLayer struct {
	c          *Conn
	local      [8]byte
	peer       [8]byte
	noID       bool // the peer rejected the Interface-Identifier option
	collisions int  // the peer's identifier was braid's
}

func (l *ipv6cpLayer) request() []frame.Option {
	if l.noID {
		return nil
	}
	return []frame.Option{frame.InterfaceID(l.local)}
}

func (l *ipv6cpLayer) acked([]frame.Option) {}

func (l *ipv6cpLayer) naked(opts []frame.Option) error {
	for _, o := range opts {
		if o.Type != frame.IPV6CPInterfaceID || l.noID {
			continue
		}
		id, ok := o.InterfaceID()
		if ok && id != ([8]byte{}) && id != l.peer {
			l.c.logf(slog.LevelDebug, "IPV6CP: the peer suggests braid's interface identifier", "id", ifidString(id))
			l.local = id
		} else {
			l.local = l.c.randomID()
		}
	}
	return nil
}

func (l *ipv6cpLayer) rejected(opts []frame.Option) error {
	for _, o := range opts {
		if o.Type == frame.IPV6CPInterfaceID {
			l.noID = true
		}
	}
	return nil
}

func (l *ipv6cpLayer) check(opts []frame.Option) (uint8, []frame.Option, error) {
	var rej, nak []frame.Option
	var peer [8]byte
	for _, o := range opts {
		if o.Type != frame.IPV6CPInterfaceID {
			rej = append(rej, o)
			continue
		}
		id, ok := o.InterfaceID()
		switch {
		case !ok:
			rej = append(rej, o)
		case id == ([8]byte{}) && l.noID:
			// Both zero: RFC 5072 ends the identifier's negotiation.
			rej = append(rej, o)
		case id == ([8]byte{}) || id == l.local:
			if id == l.local {
				l.collisions++
				l.c.logf(slog.LevelInfo, "IPV6CP: the peer's interface identifier is braid's", "id", ifidString(id))
			}
			nak = append(nak, frame.InterfaceID(l.suggest()))
		default:
			peer = id
		}
	}
	switch {
	case len(rej) > 0:
		return frame.ConfigureReject, rej, nil
	case len(nak) > 0:
		return frame.ConfigureNak, nak, nil
	}
	l.peer = peer
	return frame.ConfigureAck, nil, nil
}

// suggest is an identifier for the peer, other than braid's.
func (l *ipv6cpLayer) suggest() [8]byte {
	for {
		if id := l.c.randomID(); id != l.local {
			return id
		}
	}
}

func (l *ipv6cpLayer) up(now time.Time)       { l.c.ipv6Up(now) }
func (l *ipv6cpLayer) down(now time.Time)     { l.c.ipv6Down(now) }
func (l *ipv6cpLayer) started(time.Time)      {}
func (l *ipv6cpLayer) finished(now time.Time) { l.c.ipv6Finished(now) }
func (l *ipv6cpLayer) fatalReject(uint8) bool { return true }
func (l *ipv6cpLayer) other(frame.Packet, time.Time) bool {
	return false
}

// ifidString writes an interface identifier as the low half of an IPv6
// address does.
func ifidString(id [8]byte) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 19)
	for i := 0; i < 8; i += 2 {
		if i > 0 {
			b = append(b, ':')
		}
		v := uint16(id[i])<<8 | uint16(id[i+1])
		started := false
		for s := 12; s >= 0; s -= 4 {
			d := (v >> s) & 0xf
			if d != 0 || started || s == 0 {
				b = append(b, hex[d])
				started = true
			}
		}
	}
	return string(b)
}
