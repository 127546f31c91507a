package avp

import (
	"encoding/binary"
	"fmt"
)

// Result is the value of a Result Code AVP (RFC 2661 4.4.2): why a
// StopCCN ends a control connection, or a CDN a call.
type Result struct {
	// Code is the Result Code, whose meaning depends on the message (see
	// StopCCN's and CDN's constants).
	Code uint16
	// Error is the Error Code, meaningful when Code says so (a "general
	// error"); HasError says whether the AVP carried one.
	Error    uint16
	HasError bool
	// Message is the optional human-readable Error Message.
	Message string
}

// Result codes of a StopCCN (RFC 2661 4.4.2).
const (
	StopClear        uint16 = 1 // General request to clear control connection
	StopGeneralError uint16 = 2 // General error, Error Code indicates the problem
	StopExists       uint16 = 3 // Control channel already exists
	StopNotAuth      uint16 = 4 // Requester is not authorized to establish a control channel
	StopVersion      uint16 = 5 // The protocol version of the requester is not supported
	StopShutdown     uint16 = 6 // Requester is being shut down
	StopFSM          uint16 = 7 // Finite State Machine error
)

// Result codes of a CDN (RFC 2661 4.4.2).
const (
	CDNLostCarrier      uint16 = 1  // Call disconnected due to loss of carrier
	CDNGeneralError     uint16 = 2  // Call disconnected for the reason indicated in error code
	CDNAdmin            uint16 = 3  // Call disconnected for administrative reasons
	CDNNoFacilitiesTemp uint16 = 4  // Call failed due to lack of appropriate facilities being available (temporary condition)
	CDNNoFacilitiesPerm uint16 = 5  // Call failed due to lack of appropriate facilities being available (permanent condition)
	CDNInvalidDest      uint16 = 6  // Invalid destination
	CDNNoCarrier        uint16 = 7  // Call failed due to no carrier detected
	CDNBusy             uint16 = 8  // Call failed due to detection of a busy signal
	CDNNoDialTone       uint16 = 9  // Call failed due to lack of a dial tone
	CDNTimeout          uint16 = 10 // Call was not established within time allotted by LAC
	CDNNoFraming        uint16 = 11 // Call was connected but no appropriate framing was detected
)

// General error codes (RFC 2661 4.4.2).
const (
	ErrorNone        uint16 = 0 // No general error
	ErrorNoControl   uint16 = 1 // No control connection exists yet for this LAC-LNS pair
	ErrorLength      uint16 = 2 // Length is wrong
	ErrorRange       uint16 = 3 // One of the field values was out of range or reserved field was non-zero
	ErrorResources   uint16 = 4 // Insufficient resources to handle this operation now
	ErrorSessionID   uint16 = 5 // The Session ID is invalid in this context
	ErrorVendor      uint16 = 6 // A generic vendor-specific error occurred in the LAC
	ErrorTryAnother  uint16 = 7 // Try another
	ErrorUnknownMAVP uint16 = 8 // Session or tunnel was shutdown due to receipt of an unknown AVP with the M-bit set
)

var stopTexts = [...]string{
	StopClear:        "general request to clear control connection",
	StopGeneralError: "general error",
	StopExists:       "control channel already exists",
	StopNotAuth:      "requester is not authorized to establish a control channel",
	StopVersion:      "protocol version not supported",
	StopShutdown:     "requester is being shut down",
	StopFSM:          "finite state machine error",
}

var cdnTexts = [...]string{
	CDNLostCarrier:      "loss of carrier",
	CDNGeneralError:     "general error",
	CDNAdmin:            "administrative reasons",
	CDNNoFacilitiesTemp: "no appropriate facilities (temporary)",
	CDNNoFacilitiesPerm: "no appropriate facilities (permanent)",
	CDNInvalidDest:      "invalid destination",
	CDNNoCarrier:        "no carrier",
	CDNBusy:             "busy",
	CDNNoDialTone:       "no dial tone",
	CDNTimeout:          "not established in time",
	CDNNoFraming:        "no appropriate framing",
}

var errorTexts = [...]string{
	ErrorNone:        "no general error",
	ErrorNoControl:   "no control connection exists yet",
	ErrorLength:      "length is wrong",
	ErrorRange:       "a field value out of range or a reserved field non-zero",
	ErrorResources:   "insufficient resources",
	ErrorSessionID:   "invalid Session ID",
	ErrorVendor:      "vendor-specific error",
	ErrorTryAnother:  "try another",
	ErrorUnknownMAVP: "unknown mandatory AVP",
}

func text(texts []string, code uint16) string {
	if int(code) < len(texts) && texts[code] != "" {
		return texts[code]
	}
	return "unknown"
}

// Describe says what r means in a message of type t (StopCCN or CDN), for
// status and logs: "result code 4 (requester is not authorized to
// establish a control channel): no secret".
func (r Result) Describe(t MessageType) string {
	texts := stopTexts[:]
	if t == CDN {
		texts = cdnTexts[:]
	}
	s := fmt.Sprintf("result code %d (%s)", r.Code, text(texts, r.Code))
	if r.HasError && r.Error != ErrorNone {
		s += fmt.Sprintf(", error %d (%s)", r.Error, text(errorTexts[:], r.Error))
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// NewResult returns the Result Code AVP for r, always with its Error Code
// (xl2tpd refuses the AVP without it).
func NewResult(r Result) AVP {
	v := binary.BigEndian.AppendUint16(nil, r.Code)
	v = binary.BigEndian.AppendUint16(v, r.Error)
	return New(ResultCode, append(v, r.Message...))
}

// Result returns m's Result Code, whether m has one, and an error when it
// is hidden or shorter than the two octets of its code.
func (m Message) Result() (Result, bool, error) {
	v, ok, err := m.Bytes(ResultCode, 2)
	if !ok || err != nil {
		return Result{}, ok, err
	}
	r := Result{Code: binary.BigEndian.Uint16(v)}
	switch {
	case len(v) == 3:
		return Result{}, true, fmt.Errorf("%s: Result Code of 3 octets, want 2, or 4 and more", m.Type())
	case len(v) >= 4:
		r.Error = binary.BigEndian.Uint16(v[2:])
		r.HasError = true
		r.Message = string(v[4:])
	}
	return r, true, nil
}
