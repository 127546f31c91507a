package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Codes of the packets of LCP (RFC 1661 section 5); IPCP and IPV6CP use
// the first seven (RFC 1332 section 2, RFC 5072 section 3).
const (
	ConfigureRequest uint8 = 1
	ConfigureAck     uint8 = 2
	ConfigureNak     uint8 = 3
	ConfigureReject  uint8 = 4
	TerminateRequest uint8 = 5
	TerminateAck     uint8 = 6
	CodeReject       uint8 = 7
	ProtocolReject   uint8 = 8
	EchoRequest      uint8 = 9
	EchoReply        uint8 = 10
	DiscardRequest   uint8 = 11
)

// CodeName names a control packet's code as RFC 1661 does.
func CodeName(c uint8) string {
	names := [...]string{"", "Configure-Request", "Configure-Ack", "Configure-Nak", "Configure-Reject",
		"Terminate-Request", "Terminate-Ack", "Code-Reject", "Protocol-Reject", "Echo-Request",
		"Echo-Reply", "Discard-Request"}
	if c > 0 && int(c) < len(names) {
		return names[c]
	}
	return fmt.Sprintf("code %d", c)
}

// PacketHeaderLen is the length of a control packet's Code, Identifier
// and Length fields.
const PacketHeaderLen = 4

// ErrMalformed is a packet or option whose lengths do not add up.
var ErrMalformed = errors.New("malformed PPP packet")

// Packet is a control packet (RFC 1661 section 5): LCP, IPCP or IPV6CP.
// CHAP and PAP packets share its header; see CHAP and PAP for their Data.
type Packet struct {
	// Code is the kind of packet.
	Code uint8
	// ID is the Identifier, which matches replies to requests.
	ID uint8
	// Data is what follows the header, up to Length.
	Data []byte
}

// ParsePacket reads a control packet from a frame's Information field.
// Octets beyond the Length field are padding and are dropped (RFC 1661
// section 5); a Length under 4 or beyond the field is an error.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < PacketHeaderLen {
		return Packet{}, fmt.Errorf("%w: %d octets, under the 4 of a header", ErrMalformed, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < PacketHeaderLen || n > len(b) {
		return Packet{}, fmt.Errorf("%w: Length %d in %d octets", ErrMalformed, n, len(b))
	}
	return Packet{Code: b[0], ID: b[1], Data: b[PacketHeaderLen:n]}, nil
}

// Len is the packet's length on the wire: its Length field.
func (p Packet) Len() int { return PacketHeaderLen + len(p.Data) }

// Append appends the packet to dst and returns the result. Data longer
// than a Length field can say is the caller's bug, and panics.
func (p Packet) Append(dst []byte) []byte {
	if p.Len() > 0xffff {
		panic(fmt.Sprintf("frame: a PPP packet of %d octets", p.Len()))
	}
	dst = append(dst, p.Code, p.ID, byte(p.Len()>>8), byte(p.Len()))
	return append(dst, p.Data...)
}

// Frame appends the frame of protocol proto that carries p to dst: the
// bytes to hand to L2TP.
func (p Packet) Frame(dst []byte, proto uint16) []byte {
	return p.Append(append(dst, Address, Control, byte(proto>>8), byte(proto)))
}

// Types of LCP's configuration options (RFC 1661 section 6, RFC 1570).
const (
	LCPMRU          uint8 = 1 // Maximum-Receive-Unit
	LCPACCM         uint8 = 2 // Async-Control-Character-Map (RFC 1662)
	LCPAuthProtocol uint8 = 3 // Authentication-Protocol
	LCPQuality      uint8 = 4 // Quality-Protocol
	LCPMagic        uint8 = 5 // Magic-Number
	LCPPFC          uint8 = 7 // Protocol-Field-Compression
	LCPACFC         uint8 = 8 // Address-and-Control-Field-Compression
)

// Types of IPCP's configuration options (RFC 1332, RFC 1877).
const (
	IPCPAddresses   uint8 = 1   // IP-Addresses (deprecated)
	IPCPCompression uint8 = 2   // IP-Compression-Protocol
	IPCPAddress     uint8 = 3   // IP-Address
	IPCPPrimaryDNS  uint8 = 129 // Primary DNS Server Address
	IPCPPrimaryNBNS uint8 = 130 // Primary NBNS Server Address
	IPCPSecondDNS   uint8 = 131 // Secondary DNS Server Address
	IPCPSecondNBNS  uint8 = 132 // Secondary NBNS Server Address
)

// Types of IPV6CP's configuration options (RFC 5072 section 4).
const (
	IPV6CPInterfaceID uint8 = 1 // Interface-Identifier
	IPV6CPCompression uint8 = 2 // IPv6-Compression-Protocol
)

// CHAPMD5Algorithm is the Algorithm octet of CHAP with MD5 in LCP's
// Authentication-Protocol option (RFC 1994 section 3).
const CHAPMD5Algorithm = 5

// Option is a configuration option (RFC 1661 section 6): a Type, then
// Data; its Length field is 2 + len(Data).
type Option struct {
	Type uint8
	Data []byte
}

// ParseOptions reads the options of a Configure-Request, -Ack, -Nak or
// -Reject. An option whose Length is under 2 or runs past the end is an
// error: RFC 1661 discards such packets.
func ParseOptions(b []byte) ([]Option, error) {
	var opts []Option
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: an option of one octet (type %d)", ErrMalformed, b[0])
		}
		n := int(b[1])
		if n < 2 || n > len(b) {
			return nil, fmt.Errorf("%w: option type %d with Length %d in %d octets", ErrMalformed, b[0], n, len(b))
		}
		opts = append(opts, Option{Type: b[0], Data: b[2:n]})
		b = b[n:]
	}
	return opts, nil
}

// AppendOptions appends opts to dst and returns the result. An option
// whose Data is over 253 octets is the caller's bug, and panics.
func AppendOptions(dst []byte, opts []Option) []byte {
	for _, o := range opts {
		if len(o.Data) > 253 {
			panic(fmt.Sprintf("frame: option type %d with %d octets of data", o.Type, len(o.Data)))
		}
		dst = append(dst, o.Type, byte(2+len(o.Data)))
		dst = append(dst, o.Data...)
	}
	return dst
}

// EncodeOptions returns opts as they are on the wire.
func EncodeOptions(opts []Option) []byte { return AppendOptions(nil, opts) }

// Equal reports whether o and p are the same option, octet for octet.
func (o Option) Equal(p Option) bool { return o.Type == p.Type && bytes.Equal(o.Data, p.Data) }

// Uint16 reads an option whose Data is a two-octet number (MRU).
func (o Option) Uint16() (uint16, bool) {
	if len(o.Data) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(o.Data), true
}

// Uint32 reads an option whose Data is a four-octet number (ACCM, Magic-Number).
func (o Option) Uint32() (uint32, bool) {
	if len(o.Data) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(o.Data), true
}

// MRU is LCP's Maximum-Receive-Unit option.
func MRU(n uint16) Option { return Option{Type: LCPMRU, Data: binary.BigEndian.AppendUint16(nil, n)} }

// Magic is LCP's Magic-Number option.
func Magic(m uint32) Option {
	return Option{Type: LCPMagic, Data: binary.BigEndian.AppendUint32(nil, m)}
}

// Auth is LCP's Authentication-Protocol option: protocol p, then data
// (CHAP's algorithm; nothing for PAP).
func Auth(p uint16, data ...byte) Option {
	return Option{Type: LCPAuthProtocol, Data: append(binary.BigEndian.AppendUint16(nil, p), data...)}
}

// AuthCHAPMD5 is the Authentication-Protocol option for CHAP with MD5.
func AuthCHAPMD5() Option { return Auth(ProtoCHAP, CHAPMD5Algorithm) }

// AuthPAP is the Authentication-Protocol option for PAP.
func AuthPAP() Option { return Auth(ProtoPAP) }

// AuthProtocol reads an Authentication-Protocol option: the protocol and
// what follows it.
func (o Option) AuthProtocol() (p uint16, data []byte, ok bool) {
	if len(o.Data) < 2 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(o.Data), o.Data[2:], true
}

// InterfaceID is IPV6CP's Interface-Identifier option.
func InterfaceID(id [8]byte) Option { return Option{Type: IPV6CPInterfaceID, Data: id[:]} }

// InterfaceID reads an Interface-Identifier option.
func (o Option) InterfaceID() ([8]byte, bool) {
	if len(o.Data) != 8 {
		return [8]byte{}, false
	}
	return [8]byte(o.Data), true
}

// IPAddress is IPCP's IP-Address option (RFC 1332 section 3.3); the
// unspecified address asks the peer for one.
func IPAddress(a netip.Addr) Option {
	b := a.As4()
	return Option{Type: IPCPAddress, Data: b[:]}
}

// IPv4 reads an option whose Data is one IPv4 address (IP-Address, and
// RFC 1877's).
func (o Option) IPv4() (netip.Addr, bool) {
	if len(o.Data) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(o.Data)), true
}

// Echo is the Data of an Echo-Request, Echo-Reply or Discard-Request
// (RFC 1661 section 5.8): the sender's Magic-Number, then anything.
func Echo(magic uint32, rest []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, magic), rest...)
}

// EchoMagic reads the Magic-Number of an Echo-Request, Echo-Reply or
// Discard-Request's Data.
func EchoMagic(data []byte) (uint32, bool) {
	if len(data) < 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(data), true
}

// ProtoReject is the Data of a Protocol-Reject (RFC 1661 section 5.7): the
// rejected protocol, then the rejected frame's Information field.
func ProtoReject(p uint16, info []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, p), info...)
}

// RejectedProtocol reads a Protocol-Reject's Data: the rejected protocol.
func RejectedProtocol(data []byte) (uint16, bool) {
	if len(data) < 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(data), true
}
