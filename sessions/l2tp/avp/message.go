package avp

import (
	"encoding/binary"
	"fmt"
)

// MessageType is a control message's type: the value of its Message Type
// AVP (RFC 2661 3.2).
type MessageType uint16

// The control message types of RFC 2661 3.2.
const (
	// ZLB is no message type: a Zero-Length Body message, which has no
	// AVPs and only acknowledges (section 5.8).
	ZLB     MessageType = 0
	SCCRQ   MessageType = 1  // Start-Control-Connection-Request
	SCCRP   MessageType = 2  // Start-Control-Connection-Reply
	SCCCN   MessageType = 3  // Start-Control-Connection-Connected
	StopCCN MessageType = 4  // Stop-Control-Connection-Notification
	HELLO   MessageType = 6  // Hello
	OCRQ    MessageType = 7  // Outgoing-Call-Request
	OCRP    MessageType = 8  // Outgoing-Call-Reply
	OCCN    MessageType = 9  // Outgoing-Call-Connected
	ICRQ    MessageType = 10 // Incoming-Call-Request
	ICRP    MessageType = 11 // Incoming-Call-Reply
	ICCN    MessageType = 12 // Incoming-Call-Connected
	CDN     MessageType = 14 // Call-Disconnect-Notify
	WEN     MessageType = 15 // WAN-Error-Notify
	SLI     MessageType = 16 // Set-Link-Info
)

// String names the message type as RFC 2661 abbreviates it.
func (t MessageType) String() string {
	switch t {
	case ZLB:
		return "ZLB"
	case SCCRQ:
		return "SCCRQ"
	case SCCRP:
		return "SCCRP"
	case SCCCN:
		return "SCCCN"
	case StopCCN:
		return "StopCCN"
	case HELLO:
		return "HELLO"
	case OCRQ:
		return "OCRQ"
	case OCRP:
		return "OCRP"
	case OCCN:
		return "OCCN"
	case ICRQ:
		return "ICRQ"
	case ICRP:
		return "ICRP"
	case ICCN:
		return "ICCN"
	case CDN:
		return "CDN"
	case WEN:
		return "WEN"
	case SLI:
		return "SLI"
	}
	return fmt.Sprintf("message type %d", uint16(t))
}

// Known reports whether t is a message type of RFC 2661 3.2.
func (t MessageType) Known() bool {
	switch t {
	case SCCRQ, SCCRP, SCCCN, StopCCN, HELLO, OCRQ, OCRP, OCCN, ICRQ, ICRP, ICCN, CDN, WEN, SLI:
		return true
	}
	return false
}

// Session reports whether messages of type t are about a session (a
// call), rather than the control connection.
func (t MessageType) Session() bool {
	switch t {
	case OCRQ, OCRP, OCCN, ICRQ, ICRP, ICCN, CDN, WEN, SLI:
		return true
	}
	return false
}

// Message is a control message (RFC 2661 3.2): its header's fields and
// its AVPs, the Message Type AVP first, as they are on the wire (hidden
// AVPs hidden). A Message with no AVPs is a ZLB.
type Message struct {
	// TunnelID and SessionID are the recipient's: the IDs it assigned
	// (0 when it has not assigned one yet, as in an SCCRQ).
	TunnelID, SessionID uint16
	// Ns is the message's sequence number, Nr the next one the sender
	// expects (section 5.8).
	Ns, Nr uint16
	// AVPs are the message's attribute-value pairs.
	AVPs []AVP
}

// NewMessage returns a message of type t with avps after its Message Type
// AVP, to the peer's tunnel and session. Ns and Nr are the sender's
// reliable delivery's to fill in.
func NewMessage(t MessageType, tunnelID, sessionID uint16, avps ...AVP) Message {
	all := make([]AVP, 0, 1+len(avps))
	all = append(all, Uint16(MessageTypeAVP, uint16(t)))
	return Message{TunnelID: tunnelID, SessionID: sessionID, AVPs: append(all, avps...)}
}

// Type is the message's type, from its first AVP; ZLB when it has none.
// ParseMessage makes sure a received message's first AVP is a valid
// Message Type.
func (m Message) Type() MessageType {
	if len(m.AVPs) == 0 {
		return ZLB
	}
	a := m.AVPs[0]
	if a.Type != MessageTypeAVP || a.Vendor != 0 || a.Hidden || len(a.Value) != 2 {
		return ZLB
	}
	return MessageType(binary.BigEndian.Uint16(a.Value))
}

// String describes m for logs.
func (m Message) String() string {
	return fmt.Sprintf("%s tunnel %d session %d Ns %d Nr %d", m.Type(), m.TunnelID, m.SessionID, m.Ns, m.Nr)
}

// ParseMessage reads a control message: a header with the T, L and S bits
// set and the O and P bits clear (RFC 2661 3.1), then AVPs (section 4.1),
// none for a ZLB, else a Message Type AVP first (section 4.4.1: not hidden,
// two octets). The AVPs' values alias b.
func ParseMessage(b []byte) (Message, error) {
	h, payload, err := Parse(b)
	if err != nil {
		return Message{}, err
	}
	switch {
	case !h.Control:
		return Message{}, fmt.Errorf("%w: a data message (T bit clear)", ErrHeader)
	case !h.HasLength:
		return Message{}, fmt.Errorf("%w: L bit clear", ErrHeader)
	case !h.Sequenced:
		return Message{}, fmt.Errorf("%w: S bit clear", ErrHeader)
	case h.Offset != 0 || binary.BigEndian.Uint16(b)&bitO != 0:
		return Message{}, fmt.Errorf("%w: O bit set", ErrHeader)
	case h.Priority:
		return Message{}, fmt.Errorf("%w: P bit set", ErrHeader)
	}
	avps, err := parseAVPs(payload)
	if err != nil {
		return Message{}, err
	}
	m := Message{TunnelID: h.TunnelID, SessionID: h.SessionID, Ns: h.Ns, Nr: h.Nr, AVPs: avps}
	if len(avps) > 0 {
		a := avps[0]
		switch {
		case a.Vendor != 0 || a.Type != MessageTypeAVP:
			return Message{}, fmt.Errorf("%w: the first AVP is %s, not the Message Type", ErrAVP, a.Type)
		case a.Hidden:
			return Message{}, fmt.Errorf("%w: the Message Type is hidden", ErrAVP)
		case len(a.Value) != 2:
			return Message{}, fmt.Errorf("%w: Message Type of %d octets, want 2", ErrAVP, len(a.Value))
		case m.Type() == ZLB:
			return Message{}, fmt.Errorf("%w: Message Type 0", ErrAVP)
		}
	}
	return m, nil
}

// Append appends m, header and AVPs as they are, to b. It fails only when
// an AVP's value is too long for its Length field, or the message for
// its header's.
func (m Message) Append(b []byte) ([]byte, error) {
	n := 0
	for _, a := range m.AVPs {
		n += avpHeaderLen + len(a.Value)
	}
	h := Header{Control: true, HasLength: true, Sequenced: true, TunnelID: m.TunnelID, SessionID: m.SessionID, Ns: m.Ns, Nr: m.Nr}
	if h.Len()+n > 0xffff {
		return b, fmt.Errorf("%s: %d octets of AVPs do not fit the Length field", m.Type(), n)
	}
	start := len(b)
	b = AppendHeader(b, h, n)
	for _, a := range m.AVPs {
		var err error
		if b, err = appendAVP(b, a); err != nil {
			return b[:start], fmt.Errorf("%s: %w", m.Type(), err)
		}
	}
	return b, nil
}

// Find returns the first IETF AVP of type t in m.
func (m Message) Find(t Type) (AVP, bool) {
	for _, a := range m.AVPs {
		if a.Vendor == 0 && a.Type == t {
			return a, true
		}
	}
	return AVP{}, false
}

// value returns the value of m's AVP of type t, checked to be revealed
// and to have a length that want accepts.
func (m Message) value(t Type, want func(int) bool, wantText string) ([]byte, bool, error) {
	a, ok := m.Find(t)
	if !ok {
		return nil, false, nil
	}
	if a.Hidden {
		return nil, true, fmt.Errorf("%s: %s is hidden", m.Type(), t)
	}
	if !want(len(a.Value)) {
		return nil, true, fmt.Errorf("%s: %s of %d octets, want %s", m.Type(), t, len(a.Value), wantText)
	}
	return a.Value, true, nil
}

// Uint16 returns the 16-bit value of m's AVP of type t, whether m has
// one, and an error when it is hidden or not two octets long.
func (m Message) Uint16(t Type) (uint16, bool, error) {
	v, ok, err := m.value(t, func(n int) bool { return n == 2 }, "2")
	if !ok || err != nil {
		return 0, ok, err
	}
	return binary.BigEndian.Uint16(v), true, nil
}

// Uint32 returns the 32-bit value of m's AVP of type t, whether m has
// one, and an error when it is hidden or not four octets long.
func (m Message) Uint32(t Type) (uint32, bool, error) {
	v, ok, err := m.value(t, func(n int) bool { return n == 4 }, "4")
	if !ok || err != nil {
		return 0, ok, err
	}
	return binary.BigEndian.Uint32(v), true, nil
}

// Bytes returns the value of m's AVP of type t, whether m has one, and an
// error when it is hidden or shorter than min octets.
func (m Message) Bytes(t Type, min int) ([]byte, bool, error) {
	return m.value(t, func(n int) bool { return n >= min }, fmt.Sprintf("at least %d", min))
}
