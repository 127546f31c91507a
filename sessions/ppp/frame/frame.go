// Package frame reads and writes PPP as braid carries it in L2TPv2: the
// PPP frame (RFC 1661 section 2, without the HDLC framing, which RFC 2661
// leaves out), the packets of the control protocols that share RFC
// 1661's format (LCP, IPCP, IPV6CP) and their options, and the packets of
// the two authentication protocols braid speaks: CHAP with MD5 (RFC 1994)
// and PAP (RFC 1334). It has no sockets and no clock.
//
// # Frames
//
// A frame in an L2TP data message is the Address and Control fields
// (0xff 0x03), the Protocol field and the Information field; there is no
// flag sequence, no transparency and no FCS (RFC 2661 section 3.1). On
// receive, the Address and Control fields may be missing (RFC 1661 section
// 6.6, Address-and-Control-Field-Compression) and the Protocol field may
// be one octet (section 6.5, Protocol-Field-Compression): Parse accepts
// both whether or not they were negotiated, as RFC 1661 asks of a
// receiver. Append always writes both fields in full, as Linux's
// pppol2tp does, so braid never negotiates compressing them.
//
// # Control packets and options
//
// Packet is the Code, Identifier, Length and Data of RFC 1661 section 5;
// bytes after Length are padding and are dropped. Option is the Type,
// Length and Data of a configuration option (section 6). The option
// types braid reads and writes have constructors and readers here; the
// negotiation itself (what to Ack, Nak or Reject) belongs to package ppp.
//
// # Authentication
//
// CHAP and PAP have packet formats of their own (RFC 1994 section 4, RFC
// 1334 section 2.2). CHAPMD5 is the Response value of RFC 1994 section
// 4.1 with algorithm 5: MD5 over the Identifier, the secret and the
// Challenge value.
//
// # Logs
//
// Describe writes a frame as one line for debug logs, in the manner of
// pppd's debug output, without PAP passwords or CHAP values.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol numbers of the PPP protocols braid speaks or names (RFC 1661
// section 2, RFC 1332, RFC 5072, RFC 1334, RFC 1994).
const (
	ProtoIPv4   uint16 = 0x0021 // Internet Protocol version 4
	ProtoIPv6   uint16 = 0x0057 // Internet Protocol version 6
	ProtoIPCP   uint16 = 0x8021 // IP Control Protocol
	ProtoIPV6CP uint16 = 0x8057 // IPv6 Control Protocol
	ProtoCCP    uint16 = 0x80fd // Compression Control Protocol
	ProtoLCP    uint16 = 0xc021 // Link Control Protocol
	ProtoPAP    uint16 = 0xc023 // Password Authentication Protocol
	ProtoLQR    uint16 = 0xc025 // Link Quality Report
	ProtoCHAP   uint16 = 0xc223 // Challenge Handshake Authentication Protocol
	ProtoEAP    uint16 = 0xc227 // Extensible Authentication Protocol
)

// Address and Control are the only values of the Address and Control
// fields (RFC 1662 section 3.1: All-Stations, Unnumbered Information).
const (
	Address = 0xff
	Control = 0x03
)

// HeaderLen is the length of the header Append writes: Address, Control
// and a two-octet Protocol field.
const HeaderLen = 4

// ErrShort is a frame too short to hold a Protocol field.
var ErrShort = errors.New("PPP frame too short")

// Frame is a PPP frame as read from an L2TP data message.
type Frame struct {
	// Protocol is the Protocol field, decompressed.
	Protocol uint16
	// Info is the Information field (and any padding): a slice of the
	// bytes Parse read.
	Info []byte
}

// Parse reads a PPP frame: the optional Address and Control fields, a
// Protocol field of one or two octets, then the Information field. A
// Protocol field whose value is not a valid protocol number (see
// ValidProtocol) is still returned: RFC 1661 asks that such frames be
// Protocol-Rejected, which is the caller's to do.
func Parse(b []byte) (Frame, error) {
	if len(b) >= 2 && b[0] == Address && b[1] == Control {
		b = b[2:]
	}
	if len(b) < 1 {
		return Frame{}, fmt.Errorf("%w: no Protocol field", ErrShort)
	}
	// A Protocol field's first octet is even (RFC 1661 section 2): an odd
	// first octet is the low octet of a compressed field.
	if b[0]&1 == 1 {
		return Frame{Protocol: uint16(b[0]), Info: b[1:]}, nil
	}
	if len(b) < 2 {
		return Frame{}, fmt.Errorf("%w: a Protocol field of one even octet (0x%02x)", ErrShort, b[0])
	}
	return Frame{Protocol: binary.BigEndian.Uint16(b), Info: b[2:]}, nil
}

// ValidProtocol reports whether p has the form of a protocol number: its
// low octet odd, its high octet even (RFC 1661 section 2).
func ValidProtocol(p uint16) bool { return p&0x0001 == 1 && p&0x0100 == 0 }

// Append appends a frame of protocol p with Information field info to
// dst, with the Address and Control fields and an uncompressed Protocol
// field, and returns the result.
func Append(dst []byte, p uint16, info []byte) []byte {
	dst = append(dst, Address, Control, byte(p>>8), byte(p))
	return append(dst, info...)
}

// ProtocolName names protocol p for logs and status: its acronym when
// braid knows it, else its number in hex.
func ProtocolName(p uint16) string {
	switch p {
	case ProtoIPv4:
		return "IPv4"
	case ProtoIPv6:
		return "IPv6"
	case ProtoIPCP:
		return "IPCP"
	case ProtoIPV6CP:
		return "IPV6CP"
	case ProtoCCP:
		return "CCP"
	case ProtoLCP:
		return "LCP"
	case ProtoPAP:
		return "PAP"
	case ProtoLQR:
		return "LQR"
	case ProtoCHAP:
		return "CHAP"
	case ProtoEAP:
		return "EAP"
	}
	return fmt.Sprintf("0x%04x", p)
}
