package avp

import (
	"encoding/binary"
	"fmt"
)

// Type is an AVP's Attribute Type (RFC 2661 4.4; the IETF's, Vendor ID 0).
type Type uint16

// The attribute types of RFC 2661 4.4.
const (
	MessageTypeAVP         Type = 0  // Message Type
	ResultCode             Type = 1  // Result Code (StopCCN, CDN)
	ProtocolVersion        Type = 2  // Protocol Version (SCCRQ, SCCRP)
	FramingCapabilities    Type = 3  // Framing Capabilities (SCCRQ, SCCRP)
	BearerCapabilities     Type = 4  // Bearer Capabilities (SCCRQ, SCCRP)
	TieBreaker             Type = 5  // Tie Breaker (SCCRQ)
	FirmwareRevision       Type = 6  // Firmware Revision (SCCRQ, SCCRP)
	HostName               Type = 7  // Host Name (SCCRQ, SCCRP)
	VendorName             Type = 8  // Vendor Name (SCCRQ, SCCRP)
	AssignedTunnelID       Type = 9  // Assigned Tunnel ID (SCCRQ, SCCRP, StopCCN)
	ReceiveWindowSize      Type = 10 // Receive Window Size (SCCRQ, SCCRP)
	Challenge              Type = 11 // Challenge (SCCRQ, SCCRP)
	Q931CauseCode          Type = 12 // Q.931 Cause Code (CDN)
	ChallengeResponse      Type = 13 // Challenge Response (SCCRP, SCCCN)
	AssignedSessionID      Type = 14 // Assigned Session ID (ICRQ, ICRP, OCRQ, OCRP, CDN)
	CallSerialNumber       Type = 15 // Call Serial Number (ICRQ, OCRQ)
	MinimumBPS             Type = 16 // Minimum BPS (OCRQ)
	MaximumBPS             Type = 17 // Maximum BPS (OCRQ)
	BearerType             Type = 18 // Bearer Type (ICRQ, OCRQ)
	FramingType            Type = 19 // Framing Type (ICCN, OCCN, OCRQ)
	CalledNumber           Type = 21 // Called Number (ICRQ, OCRQ)
	CallingNumber          Type = 22 // Calling Number (ICRQ)
	SubAddress             Type = 23 // Sub-Address (ICRQ, OCRQ)
	TxConnectSpeed         Type = 24 // (Tx) Connect Speed (ICCN, OCCN)
	PhysicalChannelID      Type = 25 // Physical Channel ID (ICRQ, OCRP)
	InitialReceivedLCPConf Type = 26 // Initial Received LCP CONFREQ (ICCN)
	LastSentLCPConf        Type = 27 // Last Sent LCP CONFREQ (ICCN)
	LastReceivedLCPConf    Type = 28 // Last Received LCP CONFREQ (ICCN)
	ProxyAuthenType        Type = 29 // Proxy Authen Type (ICCN)
	ProxyAuthenName        Type = 30 // Proxy Authen Name (ICCN)
	ProxyAuthenChallenge   Type = 31 // Proxy Authen Challenge (ICCN)
	ProxyAuthenID          Type = 32 // Proxy Authen ID (ICCN)
	ProxyAuthenResponse    Type = 33 // Proxy Authen Response (ICCN)
	CallErrors             Type = 34 // Call Errors (WEN)
	ACCM                   Type = 35 // ACCM (SLI)
	RandomVector           Type = 36 // Random Vector (any message)
	PrivateGroupID         Type = 37 // Private Group ID (ICCN)
	RxConnectSpeed         Type = 38 // Rx Connect Speed (ICCN, OCCN)
	SequencingRequired     Type = 39 // Sequencing Required (ICCN, OCCN)
)

// attribute is what RFC 2661 4.4 says of one attribute type.
type attribute struct {
	name string
	// mandatory is the M bit the RFC gives it.
	mandatory bool
	// hideable: the RFC lets it be hidden.
	hideable bool
}

// attributes are the AVPs of RFC 2661, by type.
var attributes = map[Type]attribute{
	MessageTypeAVP:         {"Message Type", true, false},
	ResultCode:             {"Result Code", true, true},
	ProtocolVersion:        {"Protocol Version", true, false},
	FramingCapabilities:    {"Framing Capabilities", true, true},
	BearerCapabilities:     {"Bearer Capabilities", true, true},
	TieBreaker:             {"Tie Breaker", false, false},
	FirmwareRevision:       {"Firmware Revision", false, true},
	HostName:               {"Host Name", true, false},
	VendorName:             {"Vendor Name", false, true},
	AssignedTunnelID:       {"Assigned Tunnel ID", true, true},
	ReceiveWindowSize:      {"Receive Window Size", true, false},
	Challenge:              {"Challenge", true, true},
	Q931CauseCode:          {"Q.931 Cause Code", true, true},
	ChallengeResponse:      {"Challenge Response", true, true},
	AssignedSessionID:      {"Assigned Session ID", true, true},
	CallSerialNumber:       {"Call Serial Number", true, true},
	MinimumBPS:             {"Minimum BPS", true, true},
	MaximumBPS:             {"Maximum BPS", true, true},
	BearerType:             {"Bearer Type", true, true},
	FramingType:            {"Framing Type", true, true},
	CalledNumber:           {"Called Number", true, true},
	CallingNumber:          {"Calling Number", true, true},
	SubAddress:             {"Sub-Address", true, true},
	TxConnectSpeed:         {"(Tx) Connect Speed", true, true},
	PhysicalChannelID:      {"Physical Channel ID", false, true},
	InitialReceivedLCPConf: {"Initial Received LCP CONFREQ", false, true},
	LastSentLCPConf:        {"Last Sent LCP CONFREQ", false, true},
	LastReceivedLCPConf:    {"Last Received LCP CONFREQ", false, true},
	ProxyAuthenType:        {"Proxy Authen Type", false, true},
	ProxyAuthenName:        {"Proxy Authen Name", false, true},
	ProxyAuthenChallenge:   {"Proxy Authen Challenge", false, true},
	ProxyAuthenID:          {"Proxy Authen ID", false, true},
	ProxyAuthenResponse:    {"Proxy Authen Response", false, true},
	CallErrors:             {"Call Errors", true, true},
	ACCM:                   {"ACCM", true, true},
	RandomVector:           {"Random Vector", true, false},
	PrivateGroupID:         {"Private Group ID", false, true},
	RxConnectSpeed:         {"Rx Connect Speed", false, true},
	SequencingRequired:     {"Sequencing Required", true, false},
}

// String names the attribute type as RFC 2661 does.
func (t Type) String() string {
	if a, ok := attributes[t]; ok {
		return a.name
	}
	return fmt.Sprintf("attribute %d", uint16(t))
}

// Known reports whether t is an attribute type of RFC 2661.
func (t Type) Known() bool {
	_, ok := attributes[t]
	return ok
}

// Hideable reports whether RFC 2661 lets an AVP of type t be hidden.
func (t Type) Hideable() bool { return attributes[t].hideable }

// The bits of an AVP's first two octets (RFC 2661 4.1):
//
//	|M|H| rsvd  |      Length       |
const (
	avpM        = 0x8000
	avpH        = 0x4000
	avpReserved = 0x3c00
	avpLength   = 0x03ff
	// avpHeaderLen is the length of an AVP without its value: flags and
	// length, Vendor ID, Attribute Type.
	avpHeaderLen = 6
	// MaxValueLen is the longest value an AVP can hold: its Length field
	// has ten bits.
	MaxValueLen = avpLength - avpHeaderLen
)

// AVP is one attribute-value pair (RFC 2661 4.1).
type AVP struct {
	// Mandatory is the M bit: a receiver that does not know the AVP must
	// end the session (or the tunnel) it is about.
	Mandatory bool
	// Hidden is the H bit: Value is hidden (section 4.3), as on the wire.
	// Message.Unhide reveals it.
	Hidden bool
	// Reserved holds the four reserved bits, as received. RFC 2661 4.1:
	// an AVP with one set is an unrecognized AVP.
	Reserved uint8
	// Vendor is the Vendor ID: 0 for the IETF's attributes.
	Vendor uint16
	// Type is the Attribute Type.
	Type Type
	// Value is the Attribute Value.
	Value []byte
}

// Recognized reports whether a is an AVP of RFC 2661 that this package
// can read: an IETF attribute type it knows, with no reserved bit set.
func (a AVP) Recognized() bool {
	return a.Vendor == 0 && a.Reserved == 0 && a.Type.Known()
}

// String describes a for logs: its type, and its value when it is short.
func (a AVP) String() string {
	name := a.Type.String()
	if a.Vendor != 0 {
		name = fmt.Sprintf("vendor %d attribute %d", a.Vendor, uint16(a.Type))
	}
	if a.Hidden {
		return name + " (hidden)"
	}
	return fmt.Sprintf("%s %x", name, a.Value)
}

// New returns the IETF AVP of type t with value v, with the M bit RFC 2661
// gives type t.
func New(t Type, v []byte) AVP {
	return AVP{Mandatory: attributes[t].mandatory, Type: t, Value: v}
}

// Uint16 returns the AVP of type t with a 16-bit value (Assigned Tunnel
// ID, Receive Window Size, Assigned Session ID, Protocol Version).
func Uint16(t Type, v uint16) AVP { return New(t, binary.BigEndian.AppendUint16(nil, v)) }

// Uint32 returns the AVP of type t with a 32-bit value (Framing
// Capabilities, Bearer Type, Call Serial Number, Connect Speed).
func Uint32(t Type, v uint32) AVP { return New(t, binary.BigEndian.AppendUint32(nil, v)) }

// String returns the AVP of type t with a string value (Host Name, Vendor
// Name, Called and Calling Number), as is: RFC 2661 strings are octets,
// not NUL-terminated.
func String(t Type, s string) AVP { return New(t, []byte(s)) }

// appendAVP appends a to b.
func appendAVP(b []byte, a AVP) ([]byte, error) {
	if len(a.Value) > MaxValueLen {
		return b, fmt.Errorf("%s: value of %d octets, at most %d fit", a.Type, len(a.Value), MaxValueLen)
	}
	flags := uint16(avpHeaderLen+len(a.Value)) | uint16(a.Reserved&0xf)<<10
	if a.Mandatory {
		flags |= avpM
	}
	if a.Hidden {
		flags |= avpH
	}
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, a.Vendor)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Type))
	return append(b, a.Value...), nil
}

// parseAVPs reads the AVPs of a control message's payload. The values
// alias b.
func parseAVPs(b []byte) ([]AVP, error) {
	var avps []AVP
	for off := 0; off < len(b); {
		if len(b)-off < avpHeaderLen {
			return nil, fmt.Errorf("%w: %d octets left at offset %d, an AVP header needs %d", ErrAVP, len(b)-off, off, avpHeaderLen)
		}
		flags := binary.BigEndian.Uint16(b[off:])
		n := int(flags & avpLength)
		if n < avpHeaderLen {
			return nil, fmt.Errorf("%w: AVP at offset %d has length %d, less than its header", ErrAVP, off, n)
		}
		if off+n > len(b) {
			return nil, fmt.Errorf("%w: AVP at offset %d has length %d, past the message's end (%d)", ErrAVP, off, n, len(b))
		}
		avps = append(avps, AVP{
			Mandatory: flags&avpM != 0,
			Hidden:    flags&avpH != 0,
			Reserved:  uint8(flags & avpReserved >> 10),
			Vendor:    binary.BigEndian.Uint16(b[off+2:]),
			Type:      Type(binary.BigEndian.Uint16(b[off+4:])),
			Value:     b[off+avpHeaderLen : off+n : off+n],
		})
		off += n
	}
	return avps, nil
}
