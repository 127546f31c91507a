package avp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the L2TP version this package speaks: L2TPv2 (RFC 2661).
const Version = 2

// The bits of the header's first two octets (RFC 2661 3.1):
//
//	|T|L|x|x|S|x|O|P|x|x|x|x|  Ver  |
const (
	bitT        = 0x8000 // a control message
	bitL        = 0x4000 // the Length field is present
	bitS        = 0x0800 // the Ns and Nr fields are present
	bitO        = 0x0200 // the Offset Size field is present
	bitP        = 0x0100 // priority (data messages)
	versionMask = 0x000f
	// reservedBits are the x bits, which a sender sets to 0 and a
	// receiver ignores.
	reservedBits = 0x30f0
)

// Errors of Parse and ParseMessage, wrapped with what was wrong.
var (
	// ErrShort: the packet ends before what its header says it holds.
	ErrShort = errors.New("packet too short")
	// ErrVersion: the packet is not L2TPv2 (version 1 is L2F, 3 is
	// L2TPv3).
	ErrVersion = errors.New("not L2TP version 2")
	// ErrHeader: a control message with a header RFC 2661 3.1 forbids.
	ErrHeader = errors.New("malformed control message header")
	// ErrAVP: a malformed attribute-value pair.
	ErrAVP = errors.New("malformed AVP")
)

// Header is an L2TP header (RFC 2661 3.1).
type Header struct {
	// Control is the T bit: a control message, else a data message.
	Control bool
	// HasLength is the L bit: the header carries the packet's length.
	// Control messages always do.
	HasLength bool
	// Sequenced is the S bit: the header carries Ns and Nr. Control
	// messages always do; a data message does when its session
	// sequences data.
	Sequenced bool
	// Priority is the P bit: a data message to be queued ahead of others
	// (LCP echoes, say). Always clear in control messages.
	Priority bool
	// TunnelID is the recipient's tunnel (its Assigned Tunnel ID), and
	// SessionID the recipient's session, 0 for the tunnel itself.
	TunnelID, SessionID uint16
	// Ns and Nr are the sequence numbers, when Sequenced: this message's,
	// and the next one expected from the peer (in data messages, Nr is
	// reserved).
	Ns, Nr uint16
	// Offset is how many octets of padding precede the payload (the O
	// bit and Offset Size field). Append writes none.
	Offset uint16
}

// Len is the length of h on the wire, its padding included.
func (h Header) Len() int {
	n := 6
	if h.HasLength {
		n += 2
	}
	if h.Sequenced {
		n += 4
	}
	if h.Offset > 0 {
		n += 2 + int(h.Offset)
	}
	return n
}

// Parse reads the L2TP header of packet b, as received in one UDP
// datagram, and returns it with the payload: the AVPs of a control message
// or the PPP frame of a data message. When the header has a length, the
// payload ends there and anything after it is ignored. Parse checks what
// every L2TP packet must be (version 2, fields within b); ParseMessage
// checks what a control message must be.
func Parse(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < 2 {
		return h, nil, fmt.Errorf("%w: %d octets, want a header", ErrShort, len(b))
	}
	flags := binary.BigEndian.Uint16(b)
	if v := flags & versionMask; v != Version {
		return h, nil, fmt.Errorf("%w: version %d", ErrVersion, v)
	}
	h.Control = flags&bitT != 0
	h.HasLength = flags&bitL != 0
	h.Sequenced = flags&bitS != 0
	h.Priority = flags&bitP != 0
	off := 2
	end := len(b)
	field := func(name string) (uint16, error) {
		if off+2 > end {
			return 0, fmt.Errorf("%w: %d octets, the header's %s ends at %d", ErrShort, end, name, off+2)
		}
		v := binary.BigEndian.Uint16(b[off:])
		off += 2
		return v, nil
	}
	if h.HasLength {
		n, err := field("Length")
		if err != nil {
			return h, nil, err
		}
		if int(n) > len(b) {
			return h, nil, fmt.Errorf("%w: Length says %d octets, the datagram has %d", ErrShort, n, len(b))
		}
		end = int(n)
	}
	var err error
	if h.TunnelID, err = field("Tunnel ID"); err != nil {
		return h, nil, err
	}
	if h.SessionID, err = field("Session ID"); err != nil {
		return h, nil, err
	}
	if h.Sequenced {
		if h.Ns, err = field("Ns"); err != nil {
			return h, nil, err
		}
		if h.Nr, err = field("Nr"); err != nil {
			return h, nil, err
		}
	}
	if flags&bitO != 0 {
		if h.Offset, err = field("Offset Size"); err != nil {
			return h, nil, err
		}
		if off+int(h.Offset) > end {
			return h, nil, fmt.Errorf("%w: %d octets, the offset padding ends at %d", ErrShort, end, off+int(h.Offset))
		}
		off += int(h.Offset)
	}
	return h, b[off:end], nil
}

// AppendHeader appends h, followed by nothing, to b; payloadLen is the
// length of the payload that will follow, for the Length field. It writes
// no offset padding, whatever h.Offset says.
func AppendHeader(b []byte, h Header, payloadLen int) []byte {
	flags := uint16(Version)
	if h.Control {
		flags |= bitT
	}
	if h.HasLength {
		flags |= bitL
	}
	if h.Sequenced {
		flags |= bitS
	}
	if h.Priority {
		flags |= bitP
	}
	b = binary.BigEndian.AppendUint16(b, flags)
	if h.HasLength {
		h.Offset = 0
		b = binary.BigEndian.AppendUint16(b, uint16(h.Len()+payloadLen))
	}
	b = binary.BigEndian.AppendUint16(b, h.TunnelID)
	b = binary.BigEndian.AppendUint16(b, h.SessionID)
	if h.Sequenced {
		b = binary.BigEndian.AppendUint16(b, h.Ns)
		b = binary.BigEndian.AppendUint16(b, h.Nr)
	}
	return b
}

// AppendData appends a data message carrying frame, a PPP frame, to
// session sessionID of tunnel tunnelID (the peer's IDs) to b. With seq, it
// carries Ns (the session's data sequence number); without, no sequence
// numbers, as RFC 2661 allows unless the peer asks for them.
func AppendData(b []byte, tunnelID, sessionID uint16, seq bool, ns uint16, frame []byte) []byte {
	b = AppendHeader(b, Header{TunnelID: tunnelID, SessionID: sessionID, Sequenced: seq, Ns: ns}, len(frame))
	return append(b, frame...)
}
